package half

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// Every float16 and bfloat16 widens and narrows back to itself (NaNs to a
// NaN).
func TestRoundTrip(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToFloat32(h)
		if math.IsNaN(float64(f)) {
			if g := F16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("f16 NaN %#04x -> %#04x", h, g)
			}
			continue
		}
		if g := F16(f); g != h {
			t.Fatalf("f16 %#04x -> %v -> %#04x", h, f, g)
		}
		bf := BF16ToFloat32(h)
		if math.IsNaN(float64(bf)) {
			continue
		}
		if g := BF16(bf); g != h {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", h, bf, g)
		}
	}
}

// nearest rounds x to the nearest of the sorted finite values vals (with
// their bit patterns), ties to the even pattern; beyond the largest value
// by half an ulp or more it gives Inf (inf is its pattern).
func nearest(x float64, vals []float64, bits []uint16, ulpMax float64, inf uint16) uint16 {
	sign := uint16(0)
	if math.Signbit(x) {
		sign, x = 0x8000, -x
	}
	top := vals[len(vals)-1]
	if x >= top+ulpMax/2 {
		return sign | inf
	}
	i := sort.SearchFloat64s(vals, x)
	if i < len(vals) && vals[i] == x {
		return sign | bits[i]
	}
	lo, hi := i-1, i
	if hi >= len(vals) {
		return sign | bits[lo]
	}
	dl, dh := x-vals[lo], vals[hi]-x
	switch {
	case dl < dh:
		return sign | bits[lo]
	case dh < dl:
		return sign | bits[hi]
	}
	if bits[lo]&1 == 0 {
		return sign | bits[lo]
	}
	return sign | bits[hi]
}

func positives(widen func(uint16) float32, expMask uint16) ([]float64, []uint16) {
	var vals []float64
	var bits []uint16
	for i := 0; i < 0x8000; i++ {
		if uint16(i)&expMask == expMask {
			continue // Inf and NaN
		}
		vals = append(vals, float64(widen(uint16(i))))
		bits = append(bits, uint16(i))
	}
	return vals, bits
}

// Narrowing agrees with rounding to the nearest representable value, ties
// to even, on random float32 values of every magnitude, on the midpoints
// between neighbours and on the points next to them.
func TestNearestEven(t *testing.T) {
	f16v, f16b := positives(F16ToFloat32, 0x7c00)
	bfv, bfb := positives(BF16ToFloat32, 0x7f80)
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []float32
	for i := 0; i < 200000; i++ {
		xs = append(xs, math.Float32frombits(rng.Uint32()))
	}
	for _, vals := range [][]float64{f16v, bfv} {
		for i := 0; i+1 < len(vals); i++ {
			mid := float32((vals[i] + vals[i+1]) / 2)
			xs = append(xs, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, float32(math.Inf(1))), -mid)
		}
	}
	xs = append(xs, 65504, 65519.99, 65520, 1e6, float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)))
	for _, x := range xs {
		if math.IsNaN(float64(x)) {
			if g := F16(x); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("F16(NaN) = %#04x", g)
			}
			if g := BF16(x); g&0x7f80 != 0x7f80 || g&0x7f == 0 {
				t.Fatalf("BF16(NaN) = %#04x", g)
			}
			continue
		}
		if math.IsInf(float64(x), 0) {
			continue
		}
		if want, got := nearest(float64(x), f16v, f16b, 32, 0x7c00), F16(x); got != want {
			t.Fatalf("F16(%v) = %#04x, want %#04x", x, got, want)
		}
		bfUlp := math.Ldexp(1, 127-7)
		if want, got := nearest(float64(x), bfv, bfb, bfUlp, 0x7f80), BF16(x); got != want {
			t.Fatalf("BF16(%v) = %#04x, want %#04x", x, got, want)
		}
	}
	if F16(float32(math.Inf(-1))) != 0xfc00 || BF16(float32(math.Inf(1))) != 0x7f80 {
		t.Fatal("infinities")
	}
}
