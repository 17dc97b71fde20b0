package autograd

import (
	"fmt"
	"strings"
	"testing"
)

// expandRef repeats x, viewed as (outer, inner) around the new axis, n
// times along it: (outer, n, inner).
func expandRef(x []float64, outer, n, inner int) []float64 {
	y := make([]float64, 0, outer*n*inner)
	for o := 0; o < outer; o++ {
		for k := 0; k < n; k++ {
			y = append(y, x[o*inner:(o+1)*inner]...)
		}
	}
	return y
}

// Expand against the reference at every axis of awkward shapes, forward and
// gradient (the sum over the new axis), and with a gradient that
// accumulates (x used twice).
func TestExpand(t *testing.T) {
	for _, sh := range [][]int{{1}, {7}, {3, 33}, {2, 7, 5}, {1, 129, 1}} {
		for axis := 0; axis <= len(sh); axis++ {
			for _, n := range []int{1, 7, 33} {
				outer, inner := numel(sh[:axis]), numel(sh[axis:])
				t.Run(fmt.Sprintf("%v/axis=%d/n=%d", sh, axis, n), func(t *testing.T) {
					checkOp(t, 30, 1e-12, []opInput{{shape: sh, grad: true}},
						func(e *Engine, x []*Tensor) *Tensor {
							y := Expand(x[0], axis, n)
							want := append(append(append([]int(nil), sh[:axis]...), n), sh[axis:]...)
							if !sameShape(y.shape, want) {
								t.Fatalf("shape %v, want %v", y.shape, want)
							}
							return y
						},
						func(x [][]float64) []float64 { return expandRef(x[0], outer, n, inner) })
				})
			}
		}
	}
	// (B, T, C) to (B, P, T, C), x used twice: its gradient accumulates.
	B, T, C, P := 3, 5, 7, 4
	checkOp(t, 31, 1e-12, []opInput{{shape: []int{B, T, C}, grad: true}},
		func(e *Engine, x []*Tensor) *Tensor {
			a, b := Expand(x[0], 1, P), Expand(x[0], 1, P)
			y := Add(a, b)
			a.Release()
			b.Release()
			return y
		},
		func(x [][]float64) []float64 {
			y := expandRef(x[0], B, P, T*C)
			for i := range y {
				y[i] *= 2
			}
			return y
		})
}

// A bad axis or size is an error naming the op.
func TestExpandErrors(t *testing.T) {
	for _, c := range [][2]int{{-1, 2}, {3, 2}, {1, 0}} {
		e := newEngine(t)
		x := e.Zeros(2, 3)
		Expand(x, c[0], c[1])
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), "expand:") {
			t.Errorf("axis %d, n %d: err = %v", c[0], c[1], err)
		}
		e.ClearErr()
		x.Release()
	}
}
