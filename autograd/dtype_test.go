package autograd

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/half"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// 16-bit tensors round on upload (to nearest, ties to even) and widen
// exactly on read; a float16 overflow is an error naming the tensor.
func TestDType16Conversions(t *testing.T) {
	e := newEngine(t)
	v := []float32{0, 1, -1.5, 3.14159, 1e-6, 65504, -70000 / 2, 1 + 1.0/1024 + 1.0/4096, float32(math.Inf(-1))}
	for _, dt := range []DType{F16, BF16} {
		x := e.FromFloat32As(dt, v, 3, 3).SetName("w")
		if x.DType() != dt || dt.Size() != 2 || x.Buffer().Size() < 18 {
			t.Fatalf("%v: dtype %v, size %d, buffer %d bytes", dt, x.DType(), dt.Size(), x.Buffer().Size())
		}
		got, err := x.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			want := half.F16ToFloat32(half.F16(v[i]))
			if dt == BF16 {
				want = half.BF16ToFloat32(half.BF16(v[i]))
			}
			if got[i] != want {
				t.Errorf("%v: element %d: %v, want %v", dt, i, got[i], want)
			}
		}
		if !strings.Contains(x.String(), dt.String()) {
			t.Errorf("%v: String %q does not name the type", dt, x)
		}
		x.Release()
	}
	big := e.Empty(F16, 2).SetName("big")
	if err := big.WriteFloat32([]float32{1, 7e4}); err == nil ||
		!strings.Contains(err.Error(), "big") || !strings.Contains(err.Error(), "beyond float16's range") {
		t.Errorf("float16 overflow: got %v", err)
	}
	big.Release()
}

// Linear, MatMul (b) and Embedding read frozen 16-bit weights: forward and
// the gradients of the f32 operands against the float64 references on the
// rounded weights; the weights get no gradient.
func TestOpsWith16BitWeights(t *testing.T) {
	for _, dt := range []DType{F16, BF16} {
		for _, c := range []struct{ rows, in, out int }{{1, 1, 1}, {7, 33, 5}, {12, 16, 9}} {
			t.Run(fmt.Sprintf("linear/%v/%v", dt, c), func(t *testing.T) {
				checkOp(t, 3, 1e-10, []opInput{{shape: []int{c.rows, c.in}, grad: true}, {shape: []int{c.out, c.in}, dtype: dt}},
					func(e *Engine, x []*Tensor) *Tensor { return Linear(x[0], x[1]) },
					func(x [][]float64) []float64 {
						y := make([]float64, c.rows*c.out)
						kernels.MatMulRef(y, x[0], x[1], kernels.MatMulParams{M: c.rows, N: c.out, K: c.in, TransB: true, Alpha: 1}, nil)
						return y
					})
			})
		}
		B, M, K, N := 3, 5, 4, 6
		for _, transB := range []bool{false, true} {
			t.Run(fmt.Sprintf("matmul/%v/transB=%v", dt, transB), func(t *testing.T) {
				bShape := []int{K, N}
				if transB {
					bShape = []int{N, K}
				}
				// b 2-D: shared by every batch, as a weight is.
				checkOp(t, 4, 1e-10, []opInput{{shape: []int{B, M, K}, grad: true}, {shape: bShape, dtype: dt}},
					func(e *Engine, x []*Tensor) *Tensor { return MatMul(x[0], x[1], false, transB) },
					func(x [][]float64) []float64 {
						y := make([]float64, B*M*N)
						kernels.MatMulRef(y, x[0], x[1], kernels.MatMulParams{M: M, N: N, K: K, TransB: transB, Batch: B,
							StrideA: int64(M * K), StrideC: int64(M * N), Alpha: 1}, nil)
						return y
					})
			})
		}
		t.Run(fmt.Sprintf("embedding/%v", dt), func(t *testing.T) {
			e := newEngine(t)
			const V, C = 11, 7
			rng := newRNG(9)
			table := reftest.F32s(reftest.Randn(rng, V*C, 1))
			tt := e.FromFloat32As(dt, table, V, C)
			ids := []int32{3, 0, 10, 3, 7}
			it := e.FromInt32(ids, len(ids))
			out := Embedding(tt, it)
			got, err := out.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				for j := 0; j < C; j++ {
					want := float32(dt.elemType().Round(float64(table[int(id)*C+j])))
					if got[i*C+j] != want {
						t.Fatalf("row %d col %d: %v, want %v", i, j, got[i*C+j], want)
					}
				}
			}
			release(out, it, tt)
		})
	}
}

// A 16-bit tensor cannot be trained, and ops other than the weight readers
// refuse it; each error names the tensor.
func TestDType16Errors(t *testing.T) {
	e := newEngine(t)
	w := e.FromFloat32As(BF16, make([]float32, 6), 2, 3).SetName("frozen.weight")
	x := e.FromFloat32(make([]float32, 6), 2, 3).SetRequiresGrad(true)
	check := func(what string, want ...string) {
		t.Helper()
		err := e.Err()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		for _, s := range want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %v lacks %q", what, err, s)
			}
		}
		e.ClearErr()
	}
	w.SetRequiresGrad(true)
	check("SetRequiresGrad", "frozen.weight", "only f32 tensors are trained")
	if w.RequiresGrad() {
		t.Errorf("a 16-bit tensor was made trainable")
	}
	Add(x, w).Release()
	check("add", "add:", "frozen.weight", "must be f32")
	Linear(w, x.Reshape(3, 2)).Release()
	check("linear with a 16-bit input", "linear:", "frozen.weight", "must be f32")
	MatMul(x, w, true, false).Release()
	check("matmul through a transposed a", "matmul:", "frozen.weight", "left operand")
	// Without a gradient for a the same product is fine.
	a := e.FromFloat32(make([]float32, 6), 2, 3)
	y := MatMul(a, w, true, false)
	if err := e.Err(); err != nil {
		t.Fatalf("matmul of a frozen transposed a: %v", err)
	}
	release(y, a, w, x)
}
