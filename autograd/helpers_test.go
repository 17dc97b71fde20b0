package autograd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
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

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xa11ce)) }

func randn(rng *rand.Rand, n int, s float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * s
	}
	return v
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func nmse(got, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := got[i] - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return num
	}
	return num / den
}

func checkClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	if e := nmse(got, want); !(e <= tol) {
		worst, wi := -1.0, 0
		for i := range got {
			if d := math.Abs(got[i] - want[i]); d > worst || math.IsNaN(d) {
				worst, wi = d, i
			}
		}
		t.Fatalf("%s: nmse %.3g > %.1g (element %d: got %v want %v)", what, e, tol, wi, got[wi], want[wi])
	}
}

// opInput is one operand of an op under test.
type opInput struct {
	shape []int
	data  []float64 // nil: random normal
	grad  bool      // requires grad
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
			xs[i] = randn(rng, n, 1)
		}
		// The reference sees exactly the float32 values the device sees.
		xs[i] = f64s(f32s(xs[i]))
		ts[i] = e.FromFloat32(f32s(xs[i]), in.shape...).SetRequiresGrad(in.grad)
	}
	out := dev(e, ts)
	want := ref(xs)
	got, err := out.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "forward", f64s(got), want, tol)
	anyGrad := false
	for _, in := range ins {
		anyGrad = anyGrad || in.grad
	}
	if !anyGrad {
		return
	}
	w := f64s(f32s(randn(rng, len(want), 1)))
	wt := e.FromFloat32(f32s(w), out.shape...)
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
		num := numGrad(func(v []float64) float64 {
			args := append([][]float64(nil), xs...)
			args[i] = v
			return dot(w, ref(args))
		}, x, 1e-6)
		checkClose(t, "gradient of input "+string(rune('0'+i)), f64s(g), num, 1e3*tol+1e-9)
	}
	for _, x := range ts {
		x.Release()
	}
	out.Release()
	wt.Release()
}

func numGrad(f func([]float64) float64, x []float64, h float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		old := x[i]
		x[i] = old + h
		fp := f(x)
		x[i] = old - h
		fm := f(x)
		x[i] = old
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
