// Package reftest holds the float64 helpers that tests comparing device
// results with float64 references share: random inputs, the normalized
// error and its check, and central finite differences.
package reftest

import (
	"math"
	"math/rand/v2"
	"testing"
)

// NewRNG returns a deterministic generator for seed; stream separates the
// sequences of different test packages.
func NewRNG(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// Randn returns n standard-normal values scaled by s.
func Randn(rng *rand.Rand, n int, s float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * s
	}
	return v
}

// F32s rounds v to float32.
func F32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// F64s widens v to float64.
func F64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Round32 rounds v to float32 precision in place (the values a device
// holding v sees) and returns it.
func Round32(v []float64) []float64 {
	for i, x := range v {
		v[i] = float64(float32(x))
	}
	return v
}

// NMSE is the normalized squared error Σ(got−want)²/Σwant² (or Σ(got−want)²
// when want is 0).
func NMSE(got, want []float64) float64 {
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

// CheckNMSE fails the test when got differs from want by more than tol in
// NMSE, or has a NaN or an infinity where want has none (or another).
func CheckNMSE(t testing.TB, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i, g := range got {
		if math.IsNaN(g) != math.IsNaN(want[i]) || math.IsInf(g, 0) && g != want[i] {
			t.Fatalf("%s: element %d = %v, want %v", what, i, g, want[i])
		}
	}
	if e := NMSE(got, want); !(e <= tol) {
		worst, wi := -1.0, 0
		for i := range got {
			if d := math.Abs(got[i] - want[i]); d > worst || math.IsNaN(d) {
				worst, wi = d, i
			}
		}
		t.Fatalf("%s: nmse %.3g > %.1g (worst element %d: got %v want %v)", what, e, tol, wi, got[wi], want[wi])
	}
}

// Scale is the largest |v|, the scale that elementwise tolerances are
// relative to (1 when v is all zeros, so that the tolerance stays absolute).
func Scale(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	if m == 0 {
		return 1
	}
	return m
}

// CheckScaled fails the test when an element of got differs from want by
// more than tol times want's scale (its largest magnitude): an elementwise
// bound that holds on devices whose exp and division are approximate (a
// few ulps) as well as on exact ones.
func CheckScaled(t testing.TB, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bound := tol * Scale(want)
	for i := range got {
		if d := math.Abs(got[i] - want[i]); !(d <= bound) {
			t.Fatalf("%s: element %d = %v, want %v (error %.3g > %.3g, %g of the scale %g)", what, i, got[i], want[i], d, bound, tol, Scale(want))
		}
	}
}

// NumGrad returns the central finite-difference gradient of f at x with
// step h. x is restored before it returns.
func NumGrad(f func([]float64) float64, x []float64, h float64) []float64 {
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

// Dot returns Σ a·b.
func Dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// SameBits reports whether a and b hold the same float32 values bit for
// bit (NaNs and signed zeros included).
func SameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
