package autograd

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// partitionAlpha returns B rows of P softmax weights kept clear of delta
// (finite differences must not cross it), with row 1 (when B > 1) keeping
// nothing.
func partitionAlpha(seed uint64, B, P int, delta float64) []float64 {
	a := reftest.Randn(newRNG(seed), B*P, 2)
	for b := 0; b < B; b++ {
		row := a[b*P : (b+1)*P]
		m, s := math.Inf(-1), 0.0
		for _, v := range row {
			m = math.Max(m, v)
		}
		for j := range row {
			row[j] = math.Exp(row[j] - m)
			s += row[j]
		}
		for j := range row {
			row[j] /= s
			if b == 1 {
				row[j] = delta * float64(j+1) / float64(P+1)
			}
			if math.Abs(row[j]-delta) < 1e-4 {
				row[j] += 1e-3
			}
		}
	}
	return reftest.F64s(reftest.F32s(a))
}

// Partition's mixture against the reference, forward and gradient, in
// every mode; its negatives against the reference, without gradient.
func TestPartitionOp(t *testing.T) {
	modes := map[string]kernels.PartitionOpts{
		"per-row":        {},
		"batch":          {BatchNegatives: true},
		"all-dissimilar": {AllDissimilar: true},
	}
	for _, c := range [][2]int{{1, 1}, {3, 7}, {7, 33}, {33, 5}} {
		B, P := c[0], c[1]
		for name, o := range modes {
			o.Delta = float32(1.1 / float64(P))
			t.Run(fmt.Sprintf("%dx%d/%s", B, P, name), func(t *testing.T) {
				alpha := partitionAlpha(uint64(B*100+P), B, P, float64(o.Delta))
				checkOp(t, 40, 1e-10, []opInput{{shape: []int{B, P}, data: alpha, grad: true}},
					func(e *Engine, x []*Tensor) *Tensor {
						mixed, neg := Partition(x[0], o)
						if neg.RequiresGrad() {
							t.Error("negatives require grad")
						}
						got, err := neg.Float32s()
						if err != nil {
							t.Fatal(err)
						}
						_, want := kernels.PartitionRef(alpha, B, P, o)
						reftest.CheckNMSE(t, "negatives", reftest.F64s(got), want, 0)
						neg.Release()
						return mixed
					},
					func(x [][]float64) []float64 {
						m, _ := kernels.PartitionRef(x[0], B, P, o)
						return m
					})
			})
		}
	}
}

// alpha must be (B, P).
func TestPartitionOpShape(t *testing.T) {
	e := newEngine(t)
	x := e.Zeros(2, 3, 4)
	Partition(x, kernels.PartitionOpts{})
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "partition:") {
		t.Errorf("err = %v", err)
	}
	e.ClearErr()
	x.Release()
}
