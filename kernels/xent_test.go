package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// xentLabels returns n labels in [0, V), with every ignoreEvery-th row
// ignored (none if 0).
func xentLabels(rng *rand.Rand, n, V, ignoreEvery int) []int32 {
	l := make([]int32, n)
	for i := range l {
		l[i] = int32(rng.IntN(V))
		if ignoreEvery > 0 && i%ignoreEvery == ignoreEvery-1 {
			l[i] = IgnoreIndex
		}
	}
	return l
}

func TestCrossEntropyRefGrad(t *testing.T) {
	rng := newRNG(60)
	const n, V = 4, 6
	x := reftest.Randn(rng, n*V, 2)
	for _, labels := range [][]int32{{1, -100, 5, 0}, {9, -3, 2, -100}, {-100, -100, -100, -100}} {
		for _, dloss := range []float64{1, 0.3} {
			t.Run(fmt.Sprintf("%v/dloss=%v", labels, dloss), func(t *testing.T) {
				g := CrossEntropyBackwardRef(x, labels, n, V, dloss)
				num := reftest.NumGrad(func(v []float64) float64 { return dloss * CrossEntropyRef(v, labels, n, V) }, x, 1e-5)
				reftest.CheckNMSE(t, "dlogits", g, num, 1e-14)
			})
		}
	}
}

type xentCase struct {
	n, V        int
	ignoreEvery int
	pad         int64
}

func TestCrossEntropy(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(61)
	var cases []xentCase
	for i, V := range []int{1, 7, 33, 129, 1000} {
		for j, n := range []int{1, 7, 33, 129} {
			cases = append(cases, xentCase{n, V, []int{0, 3, 2}[(i+j)%3], int64((i + j) % 4)})
		}
	}
	cases = append(cases, xentCase{40, 32128, 5, 0}, xentCase{3, 32128, 0, 1}, xentCase{5, 12, 1, 0}) // the last: all ignored
	for _, c := range cases {
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%d/ignore=%d/pad=%d/acc=%v", c.n, c.V, c.ignoreEvery, c.pad, acc), func(t *testing.T) {
				testCrossEntropy(t, d, rng, c, acc)
			})
		}
	}
}

func testCrossEntropy(t *testing.T, d *gpu.Device, rng *rand.Rand, c xentCase, acc bool) {
	n, V := c.n, c.V
	x := reftest.Randn(rng, n*V, 3)
	labels := xentLabels(rng, n, V, c.ignoreEvery)
	init := reftest.Randn(rng, n*V, 1)
	dloss := 0.7
	xm, lm := upload(t, d, x, c.pad), uploadInts(t, d, labels, c.pad+1)
	dlm := upload(t, d, []float64{dloss}, c.pad)
	scratch := zeros(t, d, int(CrossEntropyScratch(int64(n))), 1)
	scratch2 := zeros(t, d, int(CrossEntropyScratch(int64(n))), 0)
	loss, lossF := zeros(t, d, 1, 0), zeros(t, d, 1, 3)
	g, gF := upload(t, d, init, c.pad), upload(t, d, init, 0)
	r := d.NewRecorder(false)
	n8, v8 := int64(n), int64(V)
	for _, err := range []error{
		CrossEntropy(r, loss, scratch, xm, lm, n8, v8),
		CrossEntropyBackward(r, g, dlm, scratch, xm, lm, n8, v8, acc),
		CrossEntropyFused(r, lossF, gF, Mem{}, scratch2, xm, lm, n8, v8, acc),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	run(t, r)
	want := CrossEntropyRef(x, labels, n, V)
	reftest.CheckNMSE(t, "loss", download(t, loss, 1), []float64{want}, tolFP32)
	reftest.CheckNMSE(t, "fused loss", download(t, lossF, 1), []float64{want}, tolFP32)
	reftest.CheckNMSE(t, "dlogits", download(t, g, n*V), withAcc(init, CrossEntropyBackwardRef(x, labels, n, V, dloss), acc), tolFP32)
	reftest.CheckNMSE(t, "fused dlogits", download(t, gF, n*V), withAcc(init, CrossEntropyBackwardRef(x, labels, n, V, 1), acc), tolFP32)
}

// The gradient may overwrite the logits, in the backward and in the fused
// call.
func TestCrossEntropyInPlace(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(62)
	for _, c := range []xentCase{{7, 33, 3, 1}, {40, 1000, 5, 0}, {2, 129, 0, 0}} {
		t.Run(fmt.Sprintf("%dx%d", c.n, c.V), func(t *testing.T) {
			n, V := c.n, c.V
			x := reftest.Randn(rng, n*V, 3)
			labels := xentLabels(rng, n, V, c.ignoreEvery)
			xm, xm2 := upload(t, d, x, c.pad), upload(t, d, x, 0)
			lm := uploadInts(t, d, labels, 0)
			scratch := zeros(t, d, int(CrossEntropyScratch(int64(n))), 0)
			loss := zeros(t, d, 1, 0)
			r := d.NewRecorder(false)
			n8, v8 := int64(n), int64(V)
			for _, err := range []error{
				CrossEntropy(r, loss, scratch, xm, lm, n8, v8),
				CrossEntropyBackward(r, xm, Mem{}, scratch, xm, lm, n8, v8, false),
				CrossEntropyFused(r, loss, xm2, Mem{}, scratch, xm2, lm, n8, v8, false),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			want := CrossEntropyBackwardRef(x, labels, n, V, 1)
			reftest.CheckNMSE(t, "backward in place", download(t, xm, n*V), want, tolFP32)
			reftest.CheckNMSE(t, "fused in place", download(t, xm2, n*V), want, tolFP32)
			reftest.CheckNMSE(t, "loss", download(t, loss, 1), []float64{CrossEntropyRef(x, labels, n, V)}, tolFP32)
		})
	}
}

// Labels out of range are clamped on the device; the reference does the
// same.
func TestCrossEntropyClampsLabels(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(63)
	const n, V = 4, 9
	x := reftest.Randn(rng, n*V, 1)
	labels := []int32{-5, 9, 1000, -100}
	testCrossEntropyLabels(t, d, x, labels, n, V)
	if got, want := CrossEntropyRef(x, labels, n, V), CrossEntropyRef(x, []int32{0, 8, 8, -100}, n, V); got != want {
		t.Fatalf("reference: clamped labels give %v, want %v", got, want)
	}
}

func testCrossEntropyLabels(t *testing.T, d *gpu.Device, x []float64, labels []int32, n, V int) {
	xm, lm := upload(t, d, x, 0), uploadInts(t, d, labels, 0)
	scratch := zeros(t, d, int(CrossEntropyScratch(int64(n))), 0)
	loss, g := zeros(t, d, 1, 0), zeros(t, d, n*V, 0)
	r := d.NewRecorder(false)
	if err := CrossEntropyFused(r, loss, g, Mem{}, scratch, xm, lm, int64(n), int64(V), false); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	reftest.CheckNMSE(t, "loss", download(t, loss, 1), []float64{CrossEntropyRef(x, labels, n, V)}, tolFP32)
	reftest.CheckNMSE(t, "dlogits", download(t, g, n*V), CrossEntropyBackwardRef(x, labels, n, V, 1), tolFP32)
}

// Rows are processed in pieces whose logits fit one binding.
func TestCrossEntropyPieces(t *testing.T) {
	d := gputest.Device(t)
	arBindLimitForTest = 64
	defer func() { arBindLimitForTest = 0 }()
	rng := newRNG(64)
	for _, c := range []xentCase{{33, 7, 4, 1}, {20, 16, 3, 0}, {5, 64, 0, 0}} {
		t.Run(fmt.Sprintf("%dx%d", c.n, c.V), func(t *testing.T) {
			testCrossEntropy(t, d, rng, c, true)
		})
	}
}

func TestCrossEntropyErrors(t *testing.T) {
	d := gputest.Device(t)
	x := zeros(t, d, 20, 0)
	l := uploadInts(t, d, []int32{1, 2, 3, 4}, 0)
	s := zeros(t, d, int(CrossEntropyScratch(4)), 0)
	r := d.NewRecorder(false)
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s accepted", what)
		} else {
			t.Log(err)
		}
	}
	check("logits shorter than n x V", CrossEntropy(r, s, s, x, l, 4, 6))
	check("too few labels", CrossEntropy(r, s, s, x, l, 5, 4))
	check("short scratch", CrossEntropy(r, s, s.At(2), x, l, 4, 5))
	check("missing dlogits", CrossEntropyBackward(r, Mem{}, Mem{}, s, x, l, 4, 5, false))
	check("zero classes", CrossEntropyFused(r, s, x, Mem{}, s, x, l, 4, 0, false))
	if r.Err() != nil {
		t.Fatalf("recorder failed: %v", r.Err())
	}
}

func BenchmarkCrossEntropy(b *testing.B)         { arBenchOp(b, "cross_entropy") }
func BenchmarkCrossEntropyBackward(b *testing.B) { arBenchOp(b, "cross_entropy_backward") }
func BenchmarkCrossEntropyFused(b *testing.B)    { arBenchOp(b, "cross_entropy_fused") }

// T5's vocabulary over enough rows that the logits exceed one binding (here
// lowered to 512 KiB): the rows are processed in pieces.
func TestCrossEntropyAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 512<<10)
	const V = 32128
	per := arBindElems(d) / V
	n := int(per) + 3
	rng := newRNG(65)
	x := make([]float32, n*V)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	labels := xentLabels(rng, n, V, 7)
	xb, err := d.Alloc(4 * int64(len(x)))
	if err != nil {
		t.Fatal(err)
	}
	defer xb.Free()
	if err := gpu.WriteSlice(xb, 0, x); err != nil {
		t.Fatal(err)
	}
	lm := uploadInts(t, d, labels, 0)
	scratch := zeros(t, d, int(CrossEntropyScratch(int64(n))), 0)
	loss := zeros(t, d, 1, 0)
	r := d.NewRecorder(false)
	// In place: the gradient replaces the logits.
	if err := CrossEntropyFused(r, loss, Whole(xb), Mem{}, scratch, Whole(xb), lm, int64(n), V, false); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	// The reference row by row: the mean over the counted rows, and the
	// gradient of a row is its single-row gradient over the count.
	row64 := func(r int) []float64 {
		v := make([]float64, V)
		for j := range v {
			v[j] = float64(x[r*V+j])
		}
		return v
	}
	sum, count := 0.0, 0
	for r := 0; r < n; r++ {
		if labels[r] != IgnoreIndex {
			sum += CrossEntropyRef(row64(r), labels[r:r+1], 1, V)
			count++
		}
	}
	reftest.CheckNMSE(t, "loss", download(t, loss, 1), []float64{sum / float64(count)}, tolFP32)
	for _, row := range []int{0, int(per) - 1, int(per), n - 1} {
		got := download(t, Whole(xb).At(int64(row*V)), V)
		want := CrossEntropyBackwardRef(row64(row), labels[row:row+1], 1, V, 1/float64(count))
		reftest.CheckNMSE(t, fmt.Sprintf("dlogits row %d", row), got, want, tolFP32)
	}
}
