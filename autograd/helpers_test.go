package autograd

import (
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

func TestMain(m *testing.M) { gputest.Main(m) }

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e := New(gputest.Device(t))
	t.Cleanup(func() {
		e.dropTape()
		if err := e.Err(); err != nil {
			t.Errorf("engine error: %v", err)
		}
	})
	return e
}

func newRNG(seed uint64) *rand.Rand { return reftest.NewRNG(seed, 0xa11ce) }

// opInput is one operand of an op under test.
type opInput struct {
	shape []int
	data  []float64 // nil: random normal
	grad  bool      // requires grad
	dtype DType     // storage: F32 (the zero value), or F16 or BF16 for frozen weights
}

// checkOp compares an autograd op with a float64 reference, forward and
// backward: the device's vector-Jacobian product with a random upstream
// gradient against central finite differences of the reference.
func checkOp(t *testing.T, seed uint64, tol float64, ins []opInput,
	dev func(e *Engine, x []*Tensor) *Tensor, ref func(x [][]float64) []float64) {
	t.Helper()
	e := newEngine(t)
	rng := newRNG(seed)
	xs := make([][]float64, len(ins))
	ts := make([]*Tensor, len(ins))
	for i, in := range ins {
		n := numel(in.shape)
		xs[i] = in.data
		if xs[i] == nil {
			xs[i] = reftest.Randn(rng, n, 1)
		}
		// The reference sees exactly the values the device sees: rounded
		// to float32, or to the 16-bit storage type.
		xs[i] = reftest.F64s(reftest.F32s(xs[i]))
		for j, v := range xs[i] {
			xs[i][j] = in.dtype.elemType().Round(v)
		}
		ts[i] = e.FromFloat32As(in.dtype, reftest.F32s(xs[i]), in.shape...)
		if in.grad {
			ts[i].SetRequiresGrad(true)
		}
	}
	out := dev(e, ts)
	want := ref(xs)
	got, err := out.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	reftest.CheckNMSE(t, "forward", reftest.F64s(got), want, tol)
	anyGrad := false
	for _, in := range ins {
		anyGrad = anyGrad || in.grad
	}
	if !anyGrad {
		return
	}
	w := reftest.F64s(reftest.F32s(reftest.Randn(rng, len(want), 1)))
	wt := e.FromFloat32(reftest.F32s(w), out.shape...)
	if err := e.BackwardFrom(out, wt); err != nil {
		t.Fatal(err)
	}
	for i, in := range ins {
		if !in.grad {
			if ts[i].Grad() != nil {
				t.Errorf("input %d is frozen but got a gradient", i)
			}
			continue
		}
		if ts[i].Grad() == nil {
			t.Fatalf("input %d: no gradient", i)
		}
		g, err := ts[i].Grad().Float32s()
		if err != nil {
			t.Fatal(err)
		}
		x := append([]float64(nil), xs[i]...)
		num := reftest.NumGrad(func(v []float64) float64 {
			args := append([][]float64(nil), xs...)
			args[i] = v
			return reftest.Dot(w, ref(args))
		}, x, 1e-6)
		reftest.CheckNMSE(t, "gradient of input "+string(rune('0'+i)), reftest.F64s(g), num, 1e3*tol+1e-9)
	}
	for _, x := range ts {
		x.Release()
	}
	out.Release()
	wt.Release()
}
