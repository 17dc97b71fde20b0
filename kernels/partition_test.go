package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// partitionModes are the three ways of choosing negatives.
var partitionModes = map[string]PartitionOpts{
	"per-row":        {},
	"batch":          {BatchNegatives: true},
	"all-dissimilar": {AllDissimilar: true},
}

// softmaxRows returns B rows of P softmax weights of normal logits scaled by
// s, rounded to float32.
func softmaxRows(rng *rand.Rand, B, P int, s float64) []float64 {
	a := reftest.Randn(rng, B*P, s)
	for b := 0; b < B; b++ {
		row := a[b*P : (b+1)*P]
		lse := logSumExp(row)
		for j := range row {
			row[j] = math.Exp(row[j] - lse)
		}
	}
	return reftest.Round32(a)
}

// The reference gradient against finite differences of the reference
// mixture, in every mode, with a row that keeps nothing.
func TestPartitionRefGrad(t *testing.T) {
	rng := newRNG(60)
	const B, P = 4, 6
	for name, o := range partitionModes {
		o.Delta = 0.15
		t.Run(name, func(t *testing.T) {
			alpha := softmaxRows(rng, B, P, 1)
			for j := 0; j < P; j++ {
				alpha[P+j] = 0.1 // row 1 keeps nothing
			}
			for i, a := range alpha {
				if math.Abs(a-0.15) < 1e-3 {
					alpha[i] += 0.01 // no finite difference crosses δ
				}
			}
			g := reftest.Randn(rng, B*P, 1)
			da := PartitionBackwardRef(g, alpha, B, P, o)
			num := reftest.NumGrad(func(v []float64) float64 {
				m, _ := PartitionRef(v, B, P, o)
				return reftest.Dot(g, m)
			}, alpha, 1e-6)
			reftest.CheckNMSE(t, "dalpha", da, num, 1e-14)
		})
	}
}

// Ties and empty rows, by hand: alpha = δ is not kept and is a negative of
// its row; a column whose batch mean is exactly δ is not a batch negative.
func TestPartitionTies(t *testing.T) {
	d := gputest.Device(t)
	const B, P = 4, 3
	const delta = 0.25
	alpha := []float64{
		0.25, 0.125, 0.5, // a tie: not kept
		0.25, 0.375, 0.625, // two kept, s = 1
		0.25, 0.25, 0.5,
		0.25, 0.0625, 0.125, // nothing kept
	}
	wantMixed := []float64{
		0, 0, 1,
		0, 0.375, 0.625,
		0, 0, 1,
		0, 0, 0,
	}
	wantNeg := map[string][]float64{
		"per-row": {
			1, 1, 0,
			1, 0, 0,
			1, 1, 0,
			1, 1, 1,
		},
		// Column means 0.25 (a tie: not a negative), 0.203125, 0.4375.
		"batch": {
			0, 1, 0,
			0, 1, 0,
			0, 1, 0,
			0, 1, 0,
		},
		"all-dissimilar": {
			1, 1, 1,
			1, 1, 1,
			1, 1, 1,
			1, 1, 1,
		},
	}
	for name, o := range partitionModes {
		o.Delta = delta
		t.Run(name, func(t *testing.T) {
			am := upload(t, d, alpha, 1)
			mixed, neg := zeros(t, d, B*P, 0), zeros(t, d, B*P, 3)
			r := d.NewRecorder(false)
			if err := Partition(r, mixed, neg, am, B, P, o); err != nil {
				t.Fatal(err)
			}
			run(t, r)
			wm := wantMixed
			if o.AllDissimilar {
				wm = make([]float64, B*P)
			}
			m, n := PartitionRef(alpha, B, P, o)
			reftest.CheckNMSE(t, "reference mixed", m, wm, 0)
			reftest.CheckNMSE(t, "reference negatives", n, wantNeg[name], 0)
			reftest.CheckNMSE(t, "mixed", download(t, mixed, B*P), wm, 0)
			reftest.CheckNMSE(t, "negatives", download(t, neg, B*P), wantNeg[name], 0)
		})
	}
}

// partitionCase runs Partition and its backward (with and without
// accumulation) on softmax weights (B, P) with exact ties and, for B > 2, a
// row that keeps nothing, and compares them with the references.
func partitionCase(t *testing.T, rng *rand.Rand, B, P int, o PartitionOpts, pad int64) {
	t.Helper()
	d := gputest.Device(t)
	alpha := softmaxRows(rng, B, P, 2)
	// δ near the average weight: some prompts kept, some not.
	o.Delta = float32(1.2 / float64(P))
	delta := float64(o.Delta)
	if B > 2 {
		for j := 0; j < P; j++ {
			alpha[2*P+j] = delta // a row of ties: nothing kept, all negatives
		}
	}
	alpha[0] = delta
	if o.BatchNegatives && B > 1 {
		// Keep the column means clear of δ, where float32 and float64 means
		// might disagree.
		mean := make([]float64, P)
		SumRef(mean, alpha, 1, B, P, 1/float64(B))
		for j, m := range mean {
			if math.Abs(m-delta) < 1e-5*delta {
				alpha[P+j] += 1e-3 * delta
			}
		}
	}
	g := reftest.Round32(reftest.Randn(rng, B*P, 1))
	init := reftest.Randn(rng, B*P, 1)
	am, gm := upload(t, d, alpha, pad), upload(t, d, g, pad+1)
	mixed, neg := zeros(t, d, B*P, 2), zeros(t, d, B*P, pad)
	da, daAcc := upload(t, d, init, 0), upload(t, d, init, pad)
	r := d.NewRecorder(false)
	b, p := int64(B), int64(P)
	for _, err := range []error{
		Partition(r, mixed, neg, am, b, p, o),
		PartitionBackward(r, da, gm, am, mixed, b, p, o, false),
		PartitionBackward(r, daAcc, gm, am, mixed, b, p, o, true),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	run(t, r)
	wm, wn := PartitionRef(alpha, B, P, o)
	reftest.CheckNMSE(t, "mixed", download(t, mixed, B*P), wm, tolFP32)
	reftest.CheckNMSE(t, "negatives", download(t, neg, B*P), wn, 0)
	wda := PartitionBackwardRef(g, alpha, B, P, o)
	reftest.CheckNMSE(t, "dalpha", download(t, da, B*P), wda, tolFP32)
	reftest.CheckNMSE(t, "dalpha acc", download(t, daAcc, B*P), withAcc(init, wda, true), tolFP32)
	if B > 2 {
		for j := 0; j < P; j++ {
			if wm[2*P+j] != 0 || (!o.BatchNegatives && wn[2*P+j] != 1) {
				t.Fatalf("row of ties: mixed %v, negative %v", wm[2*P+j], wn[2*P+j])
			}
		}
	}
}

// Partition and its backward against the references on awkward shapes in
// every mode, with odd offsets; rows longer than one subgroup's loop limit
// on lavapipe.
func TestPartition(t *testing.T) {
	rng := newRNG(61)
	cases := [][2]int{{1, 1}, {7, 33}, {33, 7}, {129, 5}, {3, 129}, {2, 1000}, {1000, 3}, {2, 300001}}
	for ci, c := range cases {
		for name, o := range partitionModes {
			t.Run(fmt.Sprintf("%dx%d/%s", c[0], c[1], name), func(t *testing.T) {
				partitionCase(t, rng, c[0], c[1], o, int64(ci%3))
			})
		}
	}
}

// Operands larger than one binding are split into pieces of whole rows (the
// mixture) or of elements starting mid-row (the negatives); a row larger
// than a binding is an error.
func TestPartitionPieces(t *testing.T) {
	d := gputest.Device(t)
	arBindLimitForTest = 64
	defer func() { arBindLimitForTest = 0 }()
	rng := newRNG(62)
	for _, c := range [][2]int{{50, 7}, {30, 13}, {9, 40}} {
		for name, o := range partitionModes {
			t.Run(fmt.Sprintf("%dx%d/%s", c[0], c[1], name), func(t *testing.T) {
				partitionCase(t, rng, c[0], c[1], o, 1)
			})
		}
	}
	a := zeros(t, d, 2*100, 0)
	if err := Partition(d.NewRecorder(false), a, a, a, 2, 100, PartitionOpts{}); err == nil {
		t.Error("rows longer than a binding accepted")
	}
}

// Bad shapes and short operands are errors, not panics.
func TestPartitionErrors(t *testing.T) {
	d := gputest.Device(t)
	a := zeros(t, d, 6, 0)
	r := d.NewRecorder(false)
	if err := Partition(r, a, a, a, 0, 3, PartitionOpts{}); err == nil {
		t.Error("B = 0 accepted")
	}
	if err := Partition(r, a, a, a, 2, 4, PartitionOpts{}); err == nil {
		t.Error("operands too short accepted")
	}
	if err := PartitionBackward(r, a, a, a, a, 3, 3, PartitionOpts{}, false); err == nil {
		t.Error("backward with operands too short accepted")
	}
}
