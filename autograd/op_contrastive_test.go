package autograd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// Contrastive against the reference, forward and gradients (either input
// frozen), on awkward shapes with rows without negatives and P = 1.
func TestContrastiveOp(t *testing.T) {
	for _, c := range [][2]int{{1, 1}, {5, 1}, {3, 7}, {7, 33}, {33, 5}} {
		B, P := c[0], c[1]
		mask := make([]float64, B*P)
		for i := range mask {
			if (i*7)%3 != 0 && i/P != 1 { // row 1 has no negatives
				mask[i] = 1
			}
		}
		mask[len(mask)-1] = 1
		for _, g := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			t.Run(fmt.Sprintf("%dx%d/%v", B, P, g), func(t *testing.T) {
				checkOp(t, 50, 1e-10, []opInput{{shape: []int{B}, grad: g[0]}, {shape: []int{B, P}, grad: g[1]},
					{shape: []int{B, P}, data: mask}},
					func(e *Engine, x []*Tensor) *Tensor { return Contrastive(x[0], x[1], x[2], 0.5) },
					func(x [][]float64) []float64 {
						return []float64{kernels.ContrastiveRef(x[0], x[1], x[2], B, P, 0.5)}
					})
			})
		}
	}
}

// Partition's negatives feed Contrastive: the gradient reaches the scores
// and nothing else, and matches the reference.
func TestPartitionIntoContrastive(t *testing.T) {
	e := newEngine(t)
	const B, P = 3, 4
	alpha := []float32{
		0.5, 0.25, 0.125, 0.125,
		0.125, 0.125, 0.125, 0.625,
		0.25, 0.25, 0.25, 0.25, // nothing kept, all negatives
	}
	a := e.FromFloat32(alpha, B, P)
	pos := e.Param("pos", reftest.F32s(reftest.Randn(newRNG(5), B, 1)), B)
	neg := e.Param("neg", reftest.F32s(reftest.Randn(newRNG(6), B*P, 1)), B, P)
	_, negatives := Partition(a, kernels.PartitionOpts{Delta: 0.25})
	loss := Contrastive(pos, neg, negatives, 0.1)
	if err := e.Backward(loss); err != nil {
		t.Fatal(err)
	}
	mv, _ := negatives.Float32s()
	pv, _ := pos.Float32s()
	nv, _ := neg.Float32s()
	gp, _ := pos.Grad().Float32s()
	gn, _ := neg.Grad().Float32s()
	lv, _ := loss.Item()
	mask := reftest.F64s(mv)
	want := kernels.ContrastiveRef(reftest.F64s(pv), reftest.F64s(nv), mask, B, P, 0.1)
	reftest.CheckNMSE(t, "loss", []float64{float64(lv)}, []float64{want}, 1e-10)
	wp, wn := kernels.ContrastiveBackwardRef(reftest.F64s(pv), reftest.F64s(nv), mask, B, P, 0.1, 1)
	reftest.CheckNMSE(t, "dpos", reftest.F64s(gp), wp, 1e-10)
	reftest.CheckNMSE(t, "dneg", reftest.F64s(gn), wn, 1e-10)
	if a.Grad() != nil || negatives.Grad() != nil || negatives.RequiresGrad() {
		t.Error("a gradient reached alpha or the negatives")
	}
	for _, x := range []*Tensor{a, pos, neg, negatives, loss} {
		x.Release()
	}
}

// Shapes must agree: pos (B,), neg and negatives (B, P).
func TestContrastiveOpShapes(t *testing.T) {
	for _, s := range [][3][]int{
		{{3, 1}, {3, 4}, {3, 4}},
		{{2}, {3, 4}, {3, 4}},
		{{3}, {3, 4}, {3, 5}},
		{{3}, {12}, {12}},
	} {
		e := newEngine(t)
		pos, neg, mask := e.Zeros(s[0]...), e.Zeros(s[1]...), e.Zeros(s[2]...)
		Contrastive(pos, neg, mask, 1)
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), "contrastive:") {
			t.Errorf("%v: err = %v", s, err)
		}
		e.ClearErr()
		for _, x := range []*Tensor{pos, neg, mask} {
			x.Release()
		}
	}
}
