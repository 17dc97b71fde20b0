package kernels

import (
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// smallBinding is the binding limit (bytes) under which the families
// without a test of their own "above the binding limit" are checked: every
// operand below is a few times larger, so each is split as a gigabyte
// operand is split on a device's real limit.
const smallBinding = 16 << 10

// The kernel families' splitting, each against its float64 reference on
// operands larger than one binding may hold (lowered to 16 KiB).
func TestFamiliesAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, smallBinding)
	if lim := arBindElems(d); lim*4 > smallBinding {
		t.Fatalf("limit not in force: %d elements per binding", lim)
	}
	rng := newRNG(81)
	t.Run("arith", func(t *testing.T) {
		const n = 10007
		a, b := reftest.Round32(reftest.Randn(rng, n, 1)), reftest.Round32(reftest.Randn(rng, n, 1))
		am, bm, ym := upload(t, d, a, 1), upload(t, d, b, 2), zeros(t, d, n, 3)
		r := d.NewRecorder(false)
		if err := Mul(r, ym, am, bm, n); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		want := make([]float64, n)
		MulRef(want, a, b)
		reftest.CheckNMSE(t, "mul", download(t, ym, n), want, tolFP32)
	})
	t.Run("add_row", func(t *testing.T) {
		const rows, C = 61, 201
		a, b := reftest.Round32(reftest.Randn(rng, rows*C, 1)), reftest.Round32(reftest.Randn(rng, C, 1))
		am, bm, ym := upload(t, d, a, 0), upload(t, d, b, 1), zeros(t, d, rows*C, 1)
		r := d.NewRecorder(false)
		if err := AddRow(r, ym, am, bm, rows, C); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		want := make([]float64, rows*C)
		AddRowRef(want, a, b)
		reftest.CheckNMSE(t, "add_row", download(t, ym, rows*C), want, tolFP32)
	})
	t.Run("reduce", func(t *testing.T) {
		for _, s := range [][3]int{{3, 2001, 3}, {5003, 3, 1}, {2, 7, 1500}} {
			outer, axis, inner := s[0], s[1], s[2]
			x := reftest.Round32(reftest.Randn(rng, outer*axis*inner, 1))
			xm, ym := upload(t, d, x, 1), zeros(t, d, outer*inner, 0)
			r := d.NewRecorder(false)
			if err := Sum(r, ym, xm, int64(outer), int64(axis), int64(inner)); err != nil {
				t.Fatal(err)
			}
			run(t, r)
			want := make([]float64, outer*inner)
			SumRef(want, x, outer, axis, inner, 1)
			reftest.CheckNMSE(t, "sum", download(t, ym, outer*inner), want, tolFP32)
		}
	})
	t.Run("cosine", func(t *testing.T) {
		const n, C = 301, 37
		a, b := reftest.Round32(reftest.Randn(rng, n*C, 1)), reftest.Round32(reftest.Randn(rng, n*C, 1))
		am, bm, ym := upload(t, d, a, 0), upload(t, d, b, 3), zeros(t, d, n, 0)
		r := d.NewRecorder(false)
		if err := Cosine(r, ym, am, bm, n, C); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		want := make([]float64, n)
		CosineRef(want, a, b, n, C)
		reftest.CheckNMSE(t, "cosine", download(t, ym, n), want, tolFP32)
	})
	t.Run("layout", func(t *testing.T) {
		const B, Ta, Tb, C = 7, 600, 900, 3
		a, b := reftest.Round32(reftest.Randn(rng, B*Ta*C, 1)), reftest.Round32(reftest.Randn(rng, B*Tb*C, 1))
		am, bm, ym := upload(t, d, a, 1), upload(t, d, b, 0), zeros(t, d, B*(Ta+Tb)*C, 2)
		r := d.NewRecorder(false)
		if err := Concat(r, ym, am, bm, B, Ta, Tb, C); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		reftest.CheckNMSE(t, "concat", download(t, ym, B*(Ta+Tb)*C), ConcatRef(a, b, B, Ta, Tb, C), 0)
	})
	t.Run("partition", func(t *testing.T) {
		const B, P = 101, 150
		alpha := reftest.Round32(reftest.Randn(rng, B*P, 1))
		for i := range alpha {
			alpha[i] = alpha[i] * alpha[i] / 4
		}
		o := PartitionOpts{Delta: 0.1}
		am, mm, nm := upload(t, d, alpha, 1), zeros(t, d, B*P, 0), zeros(t, d, B*P, 2)
		r := d.NewRecorder(false)
		if err := Partition(r, mm, nm, am, B, P, o); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		mixed, negatives := PartitionRef(alpha, B, P, o)
		reftest.CheckNMSE(t, "mixed", download(t, mm, B*P), mixed, tolFP32)
		reftest.CheckNMSE(t, "negatives", download(t, nm, B*P), negatives, 0)
	})
	t.Run("relpos", func(t *testing.T) {
		const H, Tq, Tk = 4, 50, 61
		p := RelPos{NumBuckets: 32, MaxDistance: 128, Bidirectional: true}
		table := reftest.Round32(reftest.Randn(rng, 32*H, 1))
		tm, bm := upload(t, d, table, 1), zeros(t, d, H*Tq*Tk, 0)
		r := d.NewRecorder(false)
		if err := RelPosBias(r, bm, tm, H, Tq, Tk, 3, p); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		want := make([]float64, H*Tq*Tk)
		RelPosBiasRef(want, table, H, Tq, Tk, 3, p)
		reftest.CheckNMSE(t, "bias", download(t, bm, H*Tq*Tk), want, 0)
	})
	t.Run("contrastive", func(t *testing.T) {
		const B, P = 60, 150
		pos, neg := reftest.Round32(reftest.Randn(rng, B, 0.5)), reftest.Round32(reftest.Randn(rng, B*P, 0.5))
		negatives := make([]float64, B*P)
		for i := range negatives {
			negatives[i] = float64(i % 2)
		}
		pm, nm, gm := upload(t, d, pos, 0), upload(t, d, neg, 1), upload(t, d, negatives, 2)
		loss, scratch := zeros(t, d, 1, 0), zeros(t, d, int(ContrastiveScratch(B)), 0)
		r := d.NewRecorder(false)
		if err := Contrastive(r, loss, scratch, pm, nm, gm, B, P, 0.5); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		reftest.CheckNMSE(t, "loss", download(t, loss, 1), []float64{ContrastiveRef(pos, neg, negatives, B, P, 0.5)}, tolFP32)
	})
	t.Run("adamw", func(t *testing.T) {
		testAdamW(t, d, []int{10007, 33}, 1, AdamWHyper{LR: 0.05, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	})
}
