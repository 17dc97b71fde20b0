package autograd

import (
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// Each row's loss against the reference on that row alone; ignored rows
// give 0. The mean over counted rows is CrossEntropy's loss.
func TestCrossEntropyRows(t *testing.T) {
	for _, c := range []struct{ rows, T, V int }{{1, 1, 1}, {3, 4, 7}, {2, 5, 33}} {
		e := newEngine(t)
		n := c.rows * c.T
		x := reftest.F64s(reftest.F32s(reftest.Randn(newRNG(uint64(n)), n*c.V, 2)))
		labels := make([]int32, n)
		for i := range labels {
			labels[i] = int32((i * 5) % c.V)
		}
		if n > 1 {
			labels[n-1] = kernels.IgnoreIndex
		}
		logits := e.FromFloat32(reftest.F32s(x), c.rows, c.T, c.V)
		lab := e.FromInt32(labels, c.rows, c.T)
		rows := func() *Tensor {
			defer e.NoGrad()()
			return CrossEntropyRows(logits, lab)
		}()
		if !sameShape(rows.Shape(), []int{c.rows, c.T}) {
			t.Errorf("shape %v", rows)
		}
		got, err := rows.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, n)
		for r := range want {
			if labels[r] != kernels.IgnoreIndex {
				want[r] = kernels.CrossEntropyRef(x[r*c.V:(r+1)*c.V], labels[r:r+1], 1, c.V)
			}
		}
		reftest.CheckNMSE(t, "row losses", reftest.F64s(got), want, 1e-12)
		for _, x := range []*Tensor{logits, lab, rows} {
			x.Release()
		}
	}
}

// Per-row losses have no gradient: asking for one is an error, as are
// labels that do not fit the logits.
func TestCrossEntropyRowsErrors(t *testing.T) {
	e := newEngine(t)
	logits := e.Param("logits", make([]float32, 12), 3, 4)
	lab := e.FromInt32([]int32{0, 1, 2}, 3)
	short := e.FromInt32([]int32{0, 1}, 2)
	defer release(logits, lab, short)
	y := CrossEntropyRows(logits, lab)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "no gradient") || !sameShape(y.Shape(), []int{3}) {
		t.Errorf("with a gradient: %v, %v", err, y)
	}
	e.ClearErr()
	func() {
		defer e.NoGrad()()
		CrossEntropyRows(logits, short)
	}()
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "2 label(s)") {
		t.Errorf("short labels: %v", err)
	}
	e.ClearErr()
}

func release(ts ...*Tensor) {
	for _, t := range ts {
		t.Release()
	}
}
