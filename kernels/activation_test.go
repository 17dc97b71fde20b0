package kernels

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

var activations = []Activation{ReLU, GELUNew, SiLU}

// The reference derivatives agree with central finite differences (away
// from ReLU's kink).
func TestActivationRefGradients(t *testing.T) {
	rng := newRNG(21)
	x := reftest.Randn(rng, 50, 3)
	for i := range x {
		if x[i] > -1e-3 && x[i] < 1e-3 {
			x[i] = 0.5
		}
	}
	for _, act := range activations {
		t.Run(act.String(), func(t *testing.T) {
			for _, v := range x {
				want := reftest.NumGrad(func(u []float64) float64 { return ActivationValue(act, u[0]) }, []float64{v}, 1e-6)[0]
				got := ActivationGrad(act, v)
				if d := got - want; d > 1e-8 || d < -1e-8 {
					t.Fatalf("f'(%v) = %v, finite differences %v", v, got, want)
				}
			}
		})
	}
	// gelu_new at known points (HF's NewGELUActivation).
	for _, c := range [][2]float64{{1, 0.8411919906082768}, {-1, -0.15880800939172324}, {0, 0}} {
		if got := ActivationValue(GELUNew, c[0]); got-c[1] > 1e-15 || c[1]-got > 1e-15 {
			t.Errorf("gelu_new(%v) = %v, want %v", c[0], got, c[1])
		}
	}
}

// actInputs are n values including large magnitudes (saturation) and exact
// zeros.
func actInputs(rng interface{ NormFloat64() float64 }, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64() * 3
		switch i % 17 {
		case 5:
			x[i] = 60
		case 9:
			x[i] = -60
		case 13:
			x[i] = 0
		}
	}
	return tlF32(x)
}

func TestActivation(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(22)
	for _, act := range activations {
		for _, n := range append(awkward, 3248*5+3) {
			for _, pad := range []int64{0, 1, 3} {
				t.Run(fmt.Sprintf("%v/n=%d/pad=%d", act, n, pad), func(t *testing.T) {
					x, dy, dx0 := actInputs(rng, n), tlF32(reftest.Randn(rng, n, 1)), tlF32(reftest.Randn(rng, n, 1))
					xm, dym := upload(t, d, x, pad), upload(t, d, dy, 2*pad+1)
					ym, dxm, dxa := zeros(t, d, n, pad+2), zeros(t, d, n, 3*pad), upload(t, d, dx0, pad+1)
					xi := upload(t, d, x, pad+3)
					r := d.NewRecorder(false)
					for _, err := range []error{
						Activate(r, ym, xm, int64(n), act),
						Activate(r, xi, xi, int64(n), act), // in place
						ActivateBackward(r, dxm, dym, xm, int64(n), act, false),
						ActivateBackward(r, dxa, dym, xm, int64(n), act, true),
					} {
						if err != nil {
							t.Fatal(err)
						}
					}
					run(t, r)
					y, dx := make([]float64, n), make([]float64, n)
					ActivateRef(y, x, act)
					ActivateBackwardRef(dx, dy, x, act)
					reftest.CheckNMSE(t, "y", download(t, ym, n), y, tolFP32)
					reftest.CheckNMSE(t, "y in place", download(t, xi, n), y, tolFP32)
					reftest.CheckNMSE(t, "dx", download(t, dxm, n), dx, tolFP32)
					reftest.CheckNMSE(t, "dx accumulated", download(t, dxa, n), tlAdd(dx0, dx), tolFP32)
				})
			}
		}
	}
}

func TestGatedActivation(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(23)
	for _, act := range activations {
		for _, n := range append(awkward, 2816*3+1) {
			for _, pad := range []int64{0, 2} {
				t.Run(fmt.Sprintf("%v/n=%d/pad=%d", act, n, pad), func(t *testing.T) {
					a, b, dh := actInputs(rng, n), tlF32(reftest.Randn(rng, n, 1)), tlF32(reftest.Randn(rng, n, 1))
					da0, db0 := tlF32(reftest.Randn(rng, n, 1)), tlF32(reftest.Randn(rng, n, 1))
					am, bm, dhm := upload(t, d, a, pad), upload(t, d, b, pad+1), upload(t, d, dh, pad+3)
					hm, dam, dbm := zeros(t, d, n, pad+1), zeros(t, d, n, pad), zeros(t, d, n, pad+2)
					daa, dba := upload(t, d, da0, pad+3), upload(t, d, db0, 1)
					r := d.NewRecorder(false)
					for _, err := range []error{
						GatedActivation(r, hm, am, bm, int64(n), act),
						GatedActivationBackward(r, dam, dbm, dhm, am, bm, int64(n), act, false),
						GatedActivationBackward(r, daa, dba, dhm, am, bm, int64(n), act, true),
					} {
						if err != nil {
							t.Fatal(err)
						}
					}
					run(t, r)
					h, da, db := make([]float64, n), make([]float64, n), make([]float64, n)
					GatedActivationRef(h, a, b, act)
					GatedActivationBackwardRef(da, db, dh, a, b, act)
					reftest.CheckNMSE(t, "h", download(t, hm, n), h, tolFP32)
					reftest.CheckNMSE(t, "da", download(t, dam, n), da, tolFP32)
					reftest.CheckNMSE(t, "db", download(t, dbm, n), db, tolFP32)
					reftest.CheckNMSE(t, "da accumulated", download(t, daa, n), tlAdd(da0, da), tolFP32)
					reftest.CheckNMSE(t, "db accumulated", download(t, dba, n), tlAdd(db0, db), tolFP32)
				})
			}
		}
	}
}

// The gated backward agrees with finite differences of L = Σ g ⊙ h.
func TestGatedActivationRefGradients(t *testing.T) {
	rng := newRNG(24)
	a, b, g := reftest.Randn(rng, 9, 2), reftest.Randn(rng, 9, 1), reftest.Randn(rng, 9, 1)
	h := make([]float64, 9)
	for _, act := range []Activation{GELUNew, SiLU} {
		loss := func(a, b []float64) float64 { GatedActivationRef(h, a, b, act); return reftest.Dot(g, h) }
		da, db := make([]float64, 9), make([]float64, 9)
		GatedActivationBackwardRef(da, db, g, a, b, act)
		reftest.CheckNMSE(t, act.String()+" da", da, reftest.NumGrad(func(v []float64) float64 { return loss(v, b) }, a, 1e-5), 1e-16)
		reftest.CheckNMSE(t, act.String()+" db", db, reftest.NumGrad(func(v []float64) float64 { return loss(a, v) }, b, 1e-5), 1e-16)
	}
}

func TestActivationErrors(t *testing.T) {
	d := gputest.Device(t)
	x := zeros(t, d, 100, 0)
	r := d.NewRecorder(false)
	if err := Activate(r, x, x, 101, GELUNew); err == nil || !strings.Contains(err.Error(), "gelu_new") || !strings.Contains(err.Error(), "101") {
		t.Errorf("too short: got %v", err)
	}
	if err := Activate(r, x, x, 10, Activation(7)); err == nil {
		t.Errorf("unknown activation accepted")
	}
	if err := GatedActivationBackward(r, x, Mem{}, x, x, x, 10, GELUNew, false); err == nil || !strings.Contains(err.Error(), "db is nil") {
		t.Errorf("nil db: got %v", err)
	}
}

func BenchmarkReLU(b *testing.B)      { tlBench(b, "relu", "3248x4096") }
func BenchmarkGELUGated(b *testing.B) { tlBench(b, "gelu-gated", "3248x2816") }
func BenchmarkGELUGatedBackward(b *testing.B) {
	tlBench(b, "gelu-gated-bwd", "3248x2816")
}

// Arrays larger than one binding may hold are processed in chunks.
func TestActivationAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 64<<10)
	lim := actChunk(d)
	n := lim + 1000
	xb, err := d.Alloc(4 * (n + 3))
	if err != nil {
		t.Fatal(err)
	}
	defer xb.Free()
	x := Mem{Buf: xb, Off: 3}
	r := d.NewRecorder(false)
	if err := Fill(r, x, n, -1.5); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	at := []int64{0, lim - 2, lim - 1, lim, lim + 1, n - 1}
	for i, k := range at {
		if err := gpu.WriteSlice(xb, 3+k, []float32{float32(i + 2)}); err != nil {
			t.Fatal(err)
		}
	}
	r = d.NewRecorder(false)
	if err := GatedActivation(r, x, x, x, n, ReLU); err != nil { // x = relu(x)·x in place
		t.Fatal(err)
	}
	run(t, r)
	for i, k := range at {
		if got := download(t, x.At(k), 1)[0]; got != float64((i+2)*(i+2)) {
			t.Errorf("x[%d] = %v, want %d", k, got, (i+2)*(i+2))
		}
	}
	for _, k := range []int64{1, lim - 3, lim + 2, n - 2} { // negative: relu gives 0
		if got := download(t, x.At(k), 1)[0]; got != 0 {
			t.Errorf("x[%d] = %v, want 0", k, got)
		}
	}
}
