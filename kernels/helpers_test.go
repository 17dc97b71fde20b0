package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
)

func TestMain(m *testing.M) { gputest.Main(m) }

// Test helpers shared by the kernel tests.

// tolFP32 is the normalized-MSE bound for fp32 kernels against float64.
const tolFP32 = 1e-10

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// randn returns n standard-normal values scaled by s.
func randn(rng *rand.Rand, n int, s float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * s
	}
	return v
}

// upload copies v (rounded to float32) into a new buffer with pad spare
// elements before it, so views at odd offsets are exercised.
func upload(t testing.TB, d *gpu.Device, v []float64, pad int64) Mem {
	t.Helper()
	n := int64(len(v))
	if n == 0 {
		n = 1
	}
	b, err := d.Alloc(4 * (n + pad))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	if err := gpu.WriteSlice(b, pad, f); err != nil {
		t.Fatal(err)
	}
	return Mem{Buf: b, Off: pad}
}

// zeros allocates n zeroed elements with pad spare elements before them.
func zeros(t testing.TB, d *gpu.Device, n int, pad int64) Mem {
	t.Helper()
	return upload(t, d, make([]float64, n), pad)
}

// download reads n float32 elements of m as float64.
func download(t testing.TB, m Mem, n int) []float64 {
	t.Helper()
	f := make([]float32, n)
	if err := gpu.ReadSlice(m.Buf, m.Off, f); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, n)
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}

// run submits r and waits, failing the test on error.
func run(t testing.TB, r *gpu.Recorder) {
	t.Helper()
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
}

// nmse is the normalized squared error Σ(a−b)²/Σb² (or Σ(a−b)² when b is 0).
func nmse(got, want []float64) float64 {
	var num, den float64
	for i := range want {
		e := got[i] - want[i]
		num += e * e
		den += want[i] * want[i]
	}
	if den == 0 {
		return num
	}
	return num / den
}

// checkNMSE fails the test when got differs from want by more than tol.
func checkNMSE(t testing.TB, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i, g := range got {
		if math.IsNaN(g) != math.IsNaN(want[i]) || math.IsInf(g, 0) && g != want[i] {
			t.Fatalf("%s: element %d = %v, want %v", what, i, g, want[i])
		}
	}
	if e := nmse(got, want); e > tol || math.IsNaN(e) {
		worst, wi := 0.0, 0
		for i := range got {
			if d := math.Abs(got[i] - want[i]); d > worst {
				worst, wi = d, i
			}
		}
		t.Fatalf("%s: nmse %.3g > %.1g (worst element %d: got %v want %v)", what, e, tol, wi, got[wi], want[wi])
	}
}

// numGrad returns the central finite-difference gradient of f at x.
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

// dot returns Σ a·b.
func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// awkward are the sizes every kernel is tested on: not multiples of any
// workgroup or tile size.
var awkward = []int{1, 7, 33, 129, 1000}
