package reftest

import (
	"math"
	"testing"
)

func TestNumGradOfAQuadratic(t *testing.T) {
	x := []float64{1, -2, 0.5}
	f := func(v []float64) float64 { return v[0]*v[0] + 3*v[1]*v[2] }
	g := NumGrad(f, x, 1e-5)
	want := []float64{2, 1.5, -6}
	CheckNMSE(t, "gradient", g, want, 1e-16)
	if x[0] != 1 || x[1] != -2 || x[2] != 0.5 {
		t.Errorf("x changed: %v", x)
	}
}

func TestNMSE(t *testing.T) {
	if e := NMSE([]float64{1, 2}, []float64{1, 2}); e != 0 {
		t.Errorf("equal: %v", e)
	}
	if e := NMSE([]float64{2, 0}, []float64{1, 0}); e != 1 {
		t.Errorf("relative: %v", e)
	}
	if e := NMSE([]float64{3}, []float64{0}); e != 9 {
		t.Errorf("zero reference: %v", e)
	}
	if Dot([]float64{1, 2}, []float64{3, 4}) != 11 {
		t.Error("dot")
	}
	r := Round32([]float64{math.Pi})[0]
	if r != float64(float32(math.Pi)) {
		t.Errorf("round32: %v", r)
	}
	a, b := Randn(NewRNG(1, 2), 5, 1), Randn(NewRNG(1, 2), 5, 1)
	CheckNMSE(t, "same seed", a, b, 0)
}
