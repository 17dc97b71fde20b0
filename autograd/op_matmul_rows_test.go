package autograd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// MatMulRows against MatMul's reference on the first k rows of b, forward
// and backward (rows of b past k get no gradient), batched and with a
// shared b, with b transposed or not.
func TestMatMulRows(t *testing.T) {
	const B, H, M, R, C = 2, 3, 2, 7, 5
	for _, c := range []struct {
		k              int
		transA, transB bool
		shared         bool
	}{{4, false, true, false}, {7, false, true, false}, {1, false, false, false}, {5, true, false, false}, {3, false, true, true}} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			// a is (B, H, M, K) with K = C when b is transposed, else k.
			K, N := c.k, C
			if c.transB {
				K, N = C, c.k
			}
			aShape := []int{B, H, M, K}
			if c.transA {
				aShape = []int{B, H, K, M}
			}
			bShape := []int{B, H, R, C}
			if c.shared {
				bShape = []int{R, C}
			}
			batch := B * H
			checkOp(t, uint64(40+c.k), 1e-10, []opInput{{shape: aShape, grad: true}, {shape: bShape, grad: true}},
				func(e *Engine, x []*Tensor) *Tensor { return MatMulRows(x[0], x[1], c.transA, c.transB, c.k) },
				func(x [][]float64) []float64 {
					p := kernels.MatMulParams{M: M, N: N, K: K, TransA: c.transA, TransB: c.transB, Batch: batch,
						LDB: C, StrideA: int64(M * K), StrideB: int64(R * C), StrideC: int64(M * N), Alpha: 1}
					if c.shared {
						p.StrideB = 0
					}
					y := make([]float64, batch*M*N)
					kernels.MatMulRef(y, x[0], x[1], p, nil)
					return y
				})
		})
	}
}

// Operands that do not multiply, and k outside b's rows, are errors that
// leave a placeholder of the product's shape.
func TestMatMulRowsErrors(t *testing.T) {
	e := newEngine(t)
	a := e.Zeros(2, 3, 1, 4)
	b := e.Zeros(2, 3, 6, 4)
	defer a.Release()
	defer b.Release()
	for _, c := range []struct {
		name   string
		k      int
		transB bool
		want   string
	}{
		{"k too large", 7, true, "first 7 rows"},
		{"k zero", 0, true, "first 0 rows"},
		{"inner sizes", 3, false, "do not multiply"},
	} {
		y := MatMulRows(a, b, false, c.transB, c.k)
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
		want := []int{2, 3, 1, c.k}
		if !c.transB {
			want[3] = 4
		}
		if !sameShape(y.Shape(), want) {
			t.Errorf("%s: placeholder %v, want %v", c.name, y, shapeString(want))
		}
		e.ClearErr()
	}
}
