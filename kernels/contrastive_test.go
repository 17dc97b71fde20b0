package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// contrastiveMask returns a 0/1 mask (B, P) with about half the entries
// set, row 1 (when B > 1) without negatives and the last row with all.
func contrastiveMask(rng *rand.Rand, B, P int) []float64 {
	m := make([]float64, B*P)
	for i := range m {
		if rng.IntN(2) == 0 {
			m[i] = 1
		}
	}
	if B > 1 {
		clear(m[P : 2*P])
		for j := 0; j < P; j++ {
			m[(B-1)*P+j] = 1
		}
	}
	return m
}

// The reference gradients against finite differences of the reference
// loss, with a row without negatives.
func TestContrastiveRefGrad(t *testing.T) {
	rng := newRNG(70)
	const B, P, tau = 4, 5, 0.3
	pos, neg := reftest.Randn(rng, B, 1), reftest.Randn(rng, B*P, 1)
	mask := contrastiveMask(rng, B, P)
	const dloss = 0.7
	dpos, dneg := ContrastiveBackwardRef(pos, neg, mask, B, P, tau, dloss)
	loss := func(p, n []float64) float64 { return dloss * ContrastiveRef(p, n, mask, B, P, tau) }
	reftest.CheckNMSE(t, "dpos", dpos, reftest.NumGrad(func(v []float64) float64 { return loss(v, neg) }, pos, 1e-6), 1e-14)
	reftest.CheckNMSE(t, "dneg", dneg, reftest.NumGrad(func(v []float64) float64 { return loss(pos, v) }, neg, 1e-6), 1e-14)
	if dpos[1] != 0 {
		t.Errorf("row without negatives: dpos %v", dpos[1])
	}
	// One row, one negative, equal scores: loss log 2.
	if l := ContrastiveRef([]float64{1}, []float64{1}, []float64{1}, 1, 1, 0.5); math.Abs(l-math.Ln2) > 1e-15 {
		t.Errorf("loss %v, want log 2", l)
	}
}

// contrastiveCase runs Contrastive and its backward (both gradients, each
// alone, accumulating, with and without dloss) and compares them with the
// references.
func contrastiveCase(t *testing.T, pos, neg, mask []float64, B, P int, tau float32, pad int64, tol float64) {
	t.Helper()
	d := gputest.Device(t)
	rng := newRNG(uint64(B*1000 + P))
	posM, negM, maskM := upload(t, d, pos, pad), upload(t, d, neg, pad+1), upload(t, d, mask, 2)
	loss, scratch := zeros(t, d, 1, pad), zeros(t, d, B, 3)
	const dl = 0.625
	dloss := upload(t, d, []float64{dl}, pad+2)
	initP, initN := reftest.Randn(rng, B, 1), reftest.Randn(rng, B*P, 1)
	dpos, dneg := zeros(t, d, B, 1), zeros(t, d, B*P, pad)
	dposOnly, dnegOnly := zeros(t, d, B, 0), zeros(t, d, B*P, 3)
	dposAcc, dnegAcc := upload(t, d, initP, pad), upload(t, d, initN, 1)
	r := d.NewRecorder(false)
	b, p := int64(B), int64(P)
	for _, err := range []error{
		Contrastive(r, loss, scratch, posM, negM, maskM, b, p, tau),
		ContrastiveBackward(r, dpos, dneg, Mem{}, posM, negM, maskM, b, p, tau, false),
		ContrastiveBackward(r, dposOnly, Mem{}, dloss, posM, negM, maskM, b, p, tau, false),
		ContrastiveBackward(r, Mem{}, dnegOnly, dloss, posM, negM, maskM, b, p, tau, false),
		ContrastiveBackward(r, dposAcc, dnegAcc, dloss, posM, negM, maskM, b, p, tau, true),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	run(t, r)
	want := ContrastiveRef(pos, neg, mask, B, P, float64(tau))
	got := download(t, loss, 1)[0]
	if math.IsNaN(got) || math.IsInf(got, 0) || math.Abs(got-want) > math.Sqrt(tol)*max(1, math.Abs(want)) {
		t.Fatalf("loss %v, want %v", got, want)
	}
	wp, wn := ContrastiveBackwardRef(pos, neg, mask, B, P, float64(tau), 1)
	reftest.CheckNMSE(t, "dpos", download(t, dpos, B), wp, tol)
	reftest.CheckNMSE(t, "dneg", download(t, dneg, B*P), wn, tol)
	wp, wn = ContrastiveBackwardRef(pos, neg, mask, B, P, float64(tau), dl)
	reftest.CheckNMSE(t, "dpos alone", download(t, dposOnly, B), wp, tol)
	reftest.CheckNMSE(t, "dneg alone", download(t, dnegOnly, B*P), wn, tol)
	reftest.CheckNMSE(t, "dpos acc", download(t, dposAcc, B), withAcc(initP, wp, true), tol)
	reftest.CheckNMSE(t, "dneg acc", download(t, dnegAcc, B*P), withAcc(initN, wn, true), tol)
	// Rows without negatives contribute exactly 0.
	for i := 0; i < B; i++ {
		none := true
		for j := 0; j < P; j++ {
			none = none && mask[i*P+j] == 0
		}
		if none && (download(t, scratch.At(int64(i)), 1)[0] != 0 || download(t, dpos.At(int64(i)), 1)[0] != 0) {
			t.Fatalf("row %d has no negatives but a loss or gradient", i)
		}
	}
}

// Contrastive against the reference on awkward shapes (P = 1 included),
// rows without negatives, odd offsets, and rows longer than one subgroup's
// loop limit on lavapipe.
func TestContrastive(t *testing.T) {
	rng := newRNG(71)
	cases := [][2]int{{1, 1}, {7, 1}, {1, 7}, {7, 33}, {33, 7}, {129, 5}, {3, 129}, {1000, 3}, {2, 300001}}
	for ci, c := range cases {
		B, P := c[0], c[1]
		for _, tau := range []float32{0.07, 1} {
			t.Run(fmt.Sprintf("%dx%d/tau=%v", B, P, tau), func(t *testing.T) {
				pos, neg := reftest.Round32(reftest.Randn(rng, B, 0.5)), reftest.Round32(reftest.Randn(rng, B*P, 0.5))
				contrastiveCase(t, pos, neg, contrastiveMask(rng, B, P), B, P, tau, int64(ci%3), tolFP32)
			})
		}
	}
}

// Operands larger than one binding are split into pieces of whole rows; a
// row larger than a binding is an error.
func TestContrastivePieces(t *testing.T) {
	d := gputest.Device(t)
	arBindLimitForTest = 64
	defer func() { arBindLimitForTest = 0 }()
	rng := newRNG(73)
	for _, c := range [][2]int{{50, 7}, {30, 13}, {9, 40}, {100, 1}} {
		B, P := c[0], c[1]
		t.Run(fmt.Sprintf("%dx%d", B, P), func(t *testing.T) {
			pos, neg := reftest.Round32(reftest.Randn(rng, B, 0.5)), reftest.Round32(reftest.Randn(rng, B*P, 0.5))
			contrastiveCase(t, pos, neg, contrastiveMask(rng, B, P), B, P, 0.1, 1, tolFP32)
		})
	}
	a := zeros(t, d, 2*100, 0)
	if err := Contrastive(d.NewRecorder(false), a, a, a, a, a, 2, 100, 1); err == nil {
		t.Error("rows longer than a binding accepted")
	}
}

// Scores far beyond exp's range at this temperature: finite losses and
// gradients matching the reference, with the positive dominating some rows
// and negatives others (spread), or a large common offset with small
// differences, where every weight matters.
func TestContrastiveLargeMagnitudes(t *testing.T) {
	rng := newRNG(72)
	const B, P = 9, 7
	for _, c := range []struct{ offset, spread float64 }{{0, 1e3}, {0, 3e4}, {1e4, 0.05}, {-3e4, 0.5}} {
		t.Run(fmt.Sprintf("%v+%v", c.offset, c.spread), func(t *testing.T) {
			pos, neg := reftest.Randn(rng, B, c.spread), reftest.Randn(rng, B*P, c.spread)
			for i := range pos {
				pos[i] += c.offset
			}
			for i := range neg {
				neg[i] += c.offset
			}
			reftest.Round32(pos)
			reftest.Round32(neg)
			neg[0] = pos[0] // an exact tie with the positive
			contrastiveCase(t, pos, neg, contrastiveMask(rng, B, P), B, P, 0.05, 1, tolFP32)
		})
	}
}

// A non-positive temperature, bad shapes and short operands are errors.
func TestContrastiveErrors(t *testing.T) {
	d := gputest.Device(t)
	a := zeros(t, d, 6, 0)
	r := d.NewRecorder(false)
	for _, tau := range []float32{0, -1, float32(math.Inf(1)), float32(math.NaN())} {
		if err := Contrastive(r, a, a, a, a, a, 2, 3, tau); err == nil {
			t.Errorf("tau %v accepted", tau)
		}
	}
	if err := Contrastive(r, a, a, a, a, a, 0, 3, 1); err == nil {
		t.Error("B = 0 accepted")
	}
	if err := Contrastive(r, a, a, a, a, a, 2, 4, 1); err == nil {
		t.Error("operands too short accepted")
	}
	if err := ContrastiveBackward(r, a, a, Mem{}, a, a, a, 3, 3, 1, false); err == nil {
		t.Error("backward with operands too short accepted")
	}
}
