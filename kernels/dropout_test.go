package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

func TestDropout(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(7)
	for _, n := range append(awkward, 100000) {
		for _, p := range []float32{0, 0.1, 0.5} {
			for _, pads := range [][2]int64{{1, 2}, {0, 4}} { // float texels; RGBA32F texels
				t.Run(fmt.Sprintf("n=%d/p=%v/pads=%v", n, p, pads), func(t *testing.T) {
					x := reftest.Randn(rng, n, 1)
					xm := upload(t, d, x, pads[0])
					ym := upload(t, d, reftest.Randn(rng, n, 1), pads[1])
					seed, err := d.Alloc(8)
					if err != nil {
						t.Fatal(err)
					}
					defer seed.Free()
					if err := gpu.WriteSlice(seed, 0, []uint32{41, 0}); err != nil {
						t.Fatal(err)
					}
					sm := Mem{Buf: seed}
					r := d.NewRecorder(false)
					if err := DropoutTick(r, sm); err != nil {
						t.Fatal(err)
					}
					if err := Dropout(r, ym, xm, int64(n), p, sm, 3, false); err != nil {
						t.Fatal(err)
					}
					run(t, r)
					want := make([]float64, n)
					DropoutRef(want, download(t, xm, n), p, 42, 3)
					got := download(t, ym, n)
					reftest.CheckNMSE(t, "dropout", got, want, tolFP32)
					if n >= 100000 {
						zeros := 0
						for _, v := range got {
							if v == 0 {
								zeros++
							}
						}
						if frac := float64(zeros) / float64(n); math.Abs(frac-float64(p)) > 0.01 {
							t.Errorf("dropped fraction %.4f, want %.2f", frac, p)
						}
					}
					// Accumulate adds the same masked values (the backward pass of
					// a dropout whose output gradient is x).
					r = d.NewRecorder(false)
					if err := Dropout(r, ym, xm, int64(n), p, sm, 3, true); err != nil {
						t.Fatal(err)
					}
					run(t, r)
					for i := range want {
						want[i] *= 2
					}
					reftest.CheckNMSE(t, "dropout accumulate", download(t, ym, n), want, tolFP32)
				})
			}
		}
	}
}

// Different sites and seeds give different masks.
func TestDropoutMasksDiffer(t *testing.T) {
	same := 0
	for i := uint32(0); i < 1000; i++ {
		if dropKeep(1, 1, i, 0.5) == dropKeep(1, 2, i, 0.5) {
			same++
		}
	}
	if same < 400 || same > 600 {
		t.Errorf("sites 1 and 2 agree on %d of 1000 decisions", same)
	}
	same = 0
	for i := uint32(0); i < 1000; i++ {
		if dropKeep(1, 1, i, 0.5) == dropKeep(2, 1, i, 0.5) {
			same++
		}
	}
	if same < 400 || same > 600 {
		t.Errorf("seeds 1 and 2 agree on %d of 1000 decisions", same)
	}
}

// Arrays larger than one binding (the limit lowered to 16 KiB) are
// processed in chunks with the mask of the unchunked array: the same
// function of the global element index, forward and accumulating.
func TestDropoutAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, smallBinding)
	rng := newRNG(71)
	const n = 10007
	for _, pads := range [][2]int64{{1, 2}, {0, 4}} { // float texels; RGBA32F texels
		t.Run(fmt.Sprintf("pads=%v", pads), func(t *testing.T) {
			x := reftest.Randn(rng, n, 1)
			xm, ym := upload(t, d, x, pads[0]), upload(t, d, reftest.Randn(rng, n, 1), pads[1])
			sm := uploadIDs(t, d, []int32{977}, 0)
			r := d.NewRecorder(false)
			if err := Dropout(r, ym, xm, n, 0.3, sm, 5, false); err != nil {
				t.Fatal(err)
			}
			if r.Dispatches() < 2 {
				t.Fatalf("recorded as %d dispatch", r.Dispatches())
			}
			run(t, r)
			want := make([]float64, n)
			DropoutRef(want, download(t, xm, n), 0.3, 977, 5)
			reftest.CheckNMSE(t, "dropout", download(t, ym, n), want, tolFP32)
			r = d.NewRecorder(false)
			if err := Dropout(r, ym, xm, n, 0.3, sm, 5, true); err != nil {
				t.Fatal(err)
			}
			run(t, r)
			for i := range want {
				want[i] *= 2
			}
			reftest.CheckNMSE(t, "dropout accumulate", download(t, ym, n), want, tolFP32)
		})
	}
}
