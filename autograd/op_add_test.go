package autograd

import (
	"fmt"
	"strings"
	"testing"
)

func TestAdd(t *testing.T) {
	for _, n := range []int{1, 7, 129} {
		for _, grads := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			t.Run(fmt.Sprintf("n=%d/grads=%v", n, grads), func(t *testing.T) {
				checkOp(t, uint64(n), 1e-12, []opInput{{shape: []int{n}, grad: grads[0]}, {shape: []int{n}, grad: grads[1]}},
					func(e *Engine, x []*Tensor) *Tensor { return Add(x[0], x[1]) },
					func(x [][]float64) []float64 {
						out := make([]float64, len(x[0]))
						for i := range out {
							out[i] = x[0][i] + x[1][i]
						}
						return out
					})
			})
		}
	}
}

// A tensor used twice accumulates both gradients; released intermediates
// stay usable by backward; the tape is cleared afterwards.
func TestTapeAccumulatesAndReleases(t *testing.T) {
	e := newEngine(t)
	d := e.Device()
	before := d.MemoryStats().Allocated
	x := e.Param("x", []float32{1, 2, 3}, 3)
	y := Add(x, x) // dy/dx = 2
	z := Add(y, x) // dz/dx = 3
	y.Release()    // backward still needs nothing from y, but its node stays
	w := e.FromFloat32([]float32{1, 10, 100}, 3)
	if err := e.BackwardFrom(z, w); err != nil {
		t.Fatal(err)
	}
	if e.TapeLen() != 0 {
		t.Errorf("tape has %d nodes after backward", e.TapeLen())
	}
	g, err := x.Grad().Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float32{3, 30, 300} {
		if g[i] != want {
			t.Errorf("grad[%d] = %v, want %v", i, g[i], want)
		}
	}
	z.Release()
	w.Release()
	x.Release()
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	if after := d.MemoryStats().Allocated; after != before {
		t.Errorf("memory not returned: %d bytes before, %d after", before, after)
	}
}

// Errors are sticky and name the op; later ops do nothing.
func TestStickyErrors(t *testing.T) {
	e := New(newEngine(t).Device())
	a := e.Zeros(3)
	b := e.Zeros(4)
	c := Add(a, b)
	if e.Err() == nil {
		t.Fatal("shape mismatch not reported")
	}
	d := Add(c, c)
	if _, err := d.Float32s(); err == nil {
		t.Errorf("read after an error succeeded")
	}
	a.Release()
	if Add(a, a); e.Err() == nil {
		t.Errorf("no error kept")
	}
	e.ClearErr()
	x := e.Zeros(2)
	x.Release()
	Add(x, x)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "after Release") {
		t.Errorf("use after release: %v", err)
	}
	e.ClearErr()
	b.Release()
}

// A captured program replays: its output reflects new input data each run.
func TestCaptureReplay(t *testing.T) {
	e := newEngine(t)
	x := e.FromFloat32([]float32{1, 2}, 2)
	var out *Tensor
	prog, err := e.Capture(func() error {
		out = Add(x, x)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Release()
	for _, v := range []float32{1, 5, -2} {
		if err := x.WriteFloat32([]float32{v, 2 * v}); err != nil {
			t.Fatal(err)
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		got, err := out.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != 2*v || got[1] != 4*v {
			t.Errorf("run with %v: got %v", v, got)
		}
	}
	x.Release()
}
