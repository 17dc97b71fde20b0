package autograd

import (
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// After an error every op returns a placeholder with the shape its output
// would have had, so code that goes on (reading dimensions, reshaping)
// does not panic; reads, Backward and further ops return the first error.
func TestPlaceholdersKeepShapes(t *testing.T) {
	e := newEngine(t)
	x := e.Zeros(2, 5, 8) // (B, T, C)
	w := e.Zeros(6, 8)    // (out, in)
	tab := e.Zeros(10, 8) // (V, C)
	rel := e.Zeros(32, 4) // (buckets, H)
	ids := e.FromInt32(make([]int32, 10), 2, 5)
	p := e.Zeros(3, 8)
	seed := e.NewSeed(1)
	defer release(x, w, tab, rel, ids, p, seed)
	Add(e.Zeros(3), e.Zeros(4)) // the first error
	first := e.Err()
	if first == nil {
		t.Fatal("no error")
	}
	a4 := e.Zeros(2, 4, 5, 3)
	for _, c := range []struct {
		name string
		y    *Tensor
		want []int
	}{
		{"linear", Linear(x, w), []int{2, 5, 6}},
		{"matmul", MatMul(a4, a4, false, true), []int{2, 4, 5, 5}},
		{"matmul transposed", MatMul(a4, a4, true, false), []int{2, 4, 3, 3}},
		{"matmul rows", MatMulRows(a4, a4, false, true, 2), []int{2, 4, 5, 2}},
		{"embedding", Embedding(tab, ids), []int{2, 5, 8}},
		{"relpos", RelPosBias(rel, 5, 7, 0, true, 32, 128), []int{4, 5, 7}},
		{"prepend", PrependRows(p, x), []int{2, 8, 8}},
		{"split heads", SplitHeads(x, 4), []int{2, 4, 5, 2}},
		{"merge heads", MergeHeads(a4), []int{2, 5, 12}},
		{"concat", Concat(x, x, 1), []int{2, 10, 8}},
		{"slice", Slice(x, 1, 1, 2), []int{2, 2, 8}},
		{"sum axis", SumAxis(x, 1), []int{2, 8}},
		{"max pool", MaxPool(x, nil), []int{2, 8}},
		{"cosine", Cosine(x, x), []int{2, 5}},
		{"expand", Expand(x, 1, 3), []int{2, 3, 5, 8}},
		{"rmsnorm", RMSNorm(x, e.Zeros(8), 1e-6), []int{2, 5, 8}},
		{"softmax", Softmax(a4, nil, nil, false), []int{2, 4, 5, 3}},
		{"dropout", Dropout(x, 0.1, seed, 1), []int{2, 5, 8}},
		{"activation", Activate(x, kernels.ReLU), []int{2, 5, 8}},
		{"cross entropy", CrossEntropy(x, ids), []int{1}},
		{"cross entropy rows", CrossEntropyRows(x, ids), []int{2, 5}},
		{"mean", Mean(x), []int{1}},
		{"reshape", x.Reshape(10, 8), []int{10, 8}},
		{"view", x.View(8, 4, 2), []int{4, 2}},
	} {
		if !sameShape(c.y.Shape(), c.want) {
			t.Errorf("%s: placeholder %v, want %v", c.name, c.y, shapeString(c.want))
		}
		if _, err := c.y.Float32s(); err != first {
			t.Errorf("%s: read returned %v, want the first error", c.name, err)
		}
		c.y.Release()
	}
	if err := e.Backward(e.Placeholder(F32, 1)); err != first {
		t.Errorf("Backward returned %v", err)
	}
	if err := e.Backward(nil); err != first {
		t.Errorf("Backward(nil) returned %v", err)
	}
	a4.Release()
	e.ClearErr()
}

// Dim of an axis the tensor lacks is an engine error, not a panic; so is
// an op on an input with an empty axis (the kernels' "dimensions must be
// positive"), and Backward of a nil loss.
func TestShapeErrorsAreNotPanics(t *testing.T) {
	e := newEngine(t)
	x := e.Zeros(2, 3)
	defer x.Release()
	if d := x.Dim(2); d != 0 {
		t.Errorf("Dim(2) = %d", d)
	}
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "no such axis") {
		t.Errorf("Dim(2): %v", err)
	}
	e.ClearErr()
	empty := e.FromFloat32(nil, 0, 3)
	y := Linear(empty, x)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "dimensions must be positive") || !sameShape(y.Shape(), []int{0, 2}) {
		t.Errorf("empty input: %v, %v", err, y)
	}
	e.ClearErr()
	empty.Release()
	if err := e.Backward(nil); err == nil || !strings.Contains(err.Error(), "nil loss") {
		t.Errorf("nil loss: %v", err)
	}
	e.ClearErr()
	scalar := e.Zeros()
	defer scalar.Release()
	for name, f := range map[string]func() *Tensor{
		"rmsnorm":       func() *Tensor { return RMSNorm(scalar, scalar, 1e-6) },
		"add_row":       func() *Tensor { return AddRow(scalar, scalar) },
		"cosine":        func() *Tensor { return Cosine(scalar, scalar) },
		"cross_entropy": func() *Tensor { return CrossEntropy(scalar, e.FromInt32([]int32{0})) },
	} {
		y := f()
		if e.Err() == nil {
			t.Errorf("%s of a scalar: no error", name)
		}
		y.Release()
		e.ClearErr()
	}
}
