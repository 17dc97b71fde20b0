package kernels

import (
	"fmt"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

func TestFillCopyAxpy(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(1)
	for _, n := range append(awkward, 1<<20+3) {
		for _, pad := range []int64{0, 3} {
			t.Run(fmt.Sprintf("n=%d/pad=%d", n, pad), func(t *testing.T) {
				x := reftest.Randn(rng, n, 1)
				y := reftest.Randn(rng, n, 1)
				xm := upload(t, d, x, pad)
				ym := upload(t, d, y, pad+1)
				cm := zeros(t, d, n, 2*pad)
				fm := zeros(t, d, n, pad)
				r := d.NewRecorder(false)
				if err := Axpy(r, ym, -0.75, xm, int64(n)); err != nil {
					t.Fatal(err)
				}
				if err := Copy(r, cm, ym, int64(n)); err != nil {
					t.Fatal(err)
				}
				if err := Fill(r, fm, int64(n), 2.5); err != nil {
					t.Fatal(err)
				}
				run(t, r)
				AxpyRef(y, -0.75, x)
				gotY := download(t, ym, n)
				reftest.CheckNMSE(t, "axpy", gotY, y, tolFP32)
				reftest.CheckNMSE(t, "copy", download(t, cm, n), gotY, 0) // bit-exact
				want := make([]float64, n)
				FillRef(want, 2.5)
				reftest.CheckNMSE(t, "fill", download(t, fm, n), want, 0)
			})
		}
	}
}

// Arrays larger than one storage binding may hold are split into chunks.
func TestElementwiseAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 64<<10)
	n := maxElems(d) + 1000
	x, err := d.Alloc(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Free()
	y, err := d.Alloc(4*n + 4)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Free()
	xm, ym := Whole(x), Mem{Buf: y, Off: 1}
	r := d.NewRecorder(false)
	if err := Fill(r, xm, n, 1.5); err != nil {
		t.Fatal(err)
	}
	if err := Copy(r, ym, xm, n); err != nil {
		t.Fatal(err)
	}
	if err := Axpy(r, ym, 2, xm, n); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	// Check around the chunk boundary and both ends.
	lim := maxElems(d)
	for _, at := range []int64{0, 1, lim - 2, lim - 1, lim, lim + 1, n - 2, n - 1} {
		got := download(t, ym.At(at), 1)[0]
		if got != 4.5 {
			t.Fatalf("y[%d] = %v, want 4.5", at, got)
		}
	}
}

func TestElementwiseErrors(t *testing.T) {
	d := gputest.Device(t)
	a := zeros(t, d, 10, 0)
	r := d.NewRecorder(false)
	if err := Copy(r, a, a.At(5), 6); err == nil {
		t.Errorf("copy past the end accepted")
	}
	if err := Fill(r, Mem{}, 3, 0); err == nil {
		t.Errorf("fill of a nil Mem accepted")
	}
}
