package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// The references' gradients agree with central differences of
// L = Σ w ⊙ y.
func TestArithRefGrads(t *testing.T) {
	rng := newRNG(30)
	const rows, C = 3, 5
	a, b := reftest.Randn(rng, rows*C, 1), reftest.Randn(rng, C, 1)
	a2 := reftest.Randn(rng, rows*C, 1)
	w := reftest.Randn(rng, rows*C, 1)
	s := 0.7
	loss := func(f func(y []float64)) float64 {
		y := make([]float64, rows*C)
		f(y)
		return reftest.Dot(w, y)
	}
	t.Run("mul", func(t *testing.T) {
		da, db := MulBackwardRef(w, a, a2)
		reftest.CheckNMSE(t, "da", da, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { MulRef(y, v, a2) }) }, a, 1e-5), 1e-16)
		reftest.CheckNMSE(t, "db", db, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { MulRef(y, a, v) }) }, a2, 1e-5), 1e-16)
	})
	t.Run("scale_by", func(t *testing.T) {
		dx, ds := ScaleByBackwardRef(w, a, s)
		reftest.CheckNMSE(t, "dx", dx, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { ScaleRef(y, v, s) }) }, a, 1e-5), 1e-16)
		sv := []float64{s}
		reftest.CheckNMSE(t, "ds", []float64{ds}, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { ScaleRef(y, a, v[0]) }) }, sv, 1e-5), 1e-16)
	})
	t.Run("add_row", func(t *testing.T) {
		da, db := AddRowBackwardRef(w, C)
		reftest.CheckNMSE(t, "da", da, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { AddRowRef(y, v, b) }) }, a, 1e-5), 1e-16)
		reftest.CheckNMSE(t, "db", db, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { AddRowRef(y, a, v) }) }, b, 1e-5), 1e-16)
	})
	t.Run("mul_row", func(t *testing.T) {
		da, db := MulRowBackwardRef(w, a, b)
		reftest.CheckNMSE(t, "da", da, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { MulRowRef(y, v, b) }) }, a, 1e-5), 1e-16)
		reftest.CheckNMSE(t, "db", db, reftest.NumGrad(func(v []float64) float64 { return loss(func(y []float64) { MulRowRef(y, a, v) }) }, b, 1e-5), 1e-16)
	})
}

// withAcc returns want, or init + want when accumulating.
func withAcc(init, want []float64, acc bool) []float64 {
	if !acc {
		return want
	}
	out := make([]float64, len(want))
	for i := range want {
		out[i] = init[i] + want[i]
	}
	return out
}

func TestArith(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(31)
	for _, n := range append(awkward, 1<<16+5) {
		for _, pad := range []int64{0, 1} {
			t.Run(fmt.Sprintf("n=%d/pad=%d", n, pad), func(t *testing.T) {
				a, b := reftest.Randn(rng, n, 1), reftest.Randn(rng, n, 1)
				am, bm := upload(t, d, a, pad), upload(t, d, b, 2*pad)
				sm := upload(t, d, []float64{-1.25}, pad)
				ym := map[string]Mem{}
				r := d.NewRecorder(false)
				must := func(err error) {
					t.Helper()
					if err != nil {
						t.Fatal(err)
					}
				}
				for _, name := range []string{"add", "mul", "scale", "scale_by"} {
					ym[name] = zeros(t, d, n, 3*pad)
				}
				must(Add(r, ym["add"], am, bm, int64(n)))
				must(Mul(r, ym["mul"], am, bm, int64(n)))
				must(Scale(r, ym["scale"], am, int64(n), 0.5))
				must(ScaleBy(r, ym["scale_by"], am, sm, int64(n)))
				// In place: c = a copy, c += b, then c = c * b.
				cm := upload(t, d, a, pad)
				must(AddTo(r, cm, bm, int64(n)))
				must(Mul(r, cm, cm, bm, int64(n)))
				run(t, r)
				want := make([]float64, n)
				AddRef(want, a, b)
				reftest.CheckNMSE(t, "add", download(t, ym["add"], n), want, tolFP32)
				for i := range want {
					want[i] *= b[i]
				}
				reftest.CheckNMSE(t, "in place", download(t, cm, n), want, tolFP32)
				MulRef(want, a, b)
				reftest.CheckNMSE(t, "mul", download(t, ym["mul"], n), want, tolFP32)
				ScaleRef(want, a, 0.5)
				reftest.CheckNMSE(t, "scale", download(t, ym["scale"], n), want, tolFP32)
				ScaleRef(want, a, -1.25)
				reftest.CheckNMSE(t, "scale_by", download(t, ym["scale_by"], n), want, tolFP32)
			})
		}
	}
}

func TestArithBackward(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(32)
	for _, n := range awkward {
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/acc=%v", n, acc), func(t *testing.T) {
				pad := int64(n % 3)
				a, b, dy := reftest.Randn(rng, n, 1), reftest.Randn(rng, n, 1), reftest.Randn(rng, n, 1)
				init := reftest.Randn(rng, n, 1)
				am, bm, dym := upload(t, d, a, pad), upload(t, d, b, 0), upload(t, d, dy, pad+1)
				s := 0.75
				sm := upload(t, d, []float64{s}, 0)
				g := map[string]Mem{}
				for _, name := range []string{"add_a", "add_b", "mul_a", "mul_b", "scale", "sb_x"} {
					g[name] = upload(t, d, init, 1)
				}
				dsm := upload(t, d, []float64{init[0]}, 0)
				r := d.NewRecorder(false)
				for _, err := range []error{
					AddBackward(r, g["add_a"], g["add_b"], dym, int64(n), acc),
					MulBackward(r, g["mul_a"], g["mul_b"], dym, am, bm, int64(n), acc),
					ScaleBackward(r, g["scale"], dym, int64(n), -2, acc),
					ScaleByBackward(r, g["sb_x"], dsm, dym, am, sm, int64(n), acc),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				run(t, r)
				reftest.CheckNMSE(t, "add da", download(t, g["add_a"], n), withAcc(init, dy, acc), tolFP32)
				reftest.CheckNMSE(t, "add db", download(t, g["add_b"], n), withAcc(init, dy, acc), tolFP32)
				da, db := MulBackwardRef(dy, a, b)
				reftest.CheckNMSE(t, "mul da", download(t, g["mul_a"], n), withAcc(init, da, acc), tolFP32)
				reftest.CheckNMSE(t, "mul db", download(t, g["mul_b"], n), withAcc(init, db, acc), tolFP32)
				want := make([]float64, n)
				ScaleRef(want, dy, -2)
				reftest.CheckNMSE(t, "scale dx", download(t, g["scale"], n), withAcc(init, want, acc), tolFP32)
				dx, ds := ScaleByBackwardRef(dy, a, s)
				reftest.CheckNMSE(t, "scale_by dx", download(t, g["sb_x"], n), withAcc(init, dx, acc), tolFP32)
				reftest.CheckNMSE(t, "scale_by ds", download(t, dsm, 1), withAcc(init[:1], []float64{ds}, acc), tolFP32)
			})
		}
	}
}

// rowCases are (rows, C) shapes for the broadcasting ops.
var rowCases = [][2]int{{1, 1}, {7, 33}, {129, 8}, {33, 1000}, {5, 129}, {1000, 4}}

func TestArithRow(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(33)
	for _, rc := range rowCases {
		for _, acc := range []bool{false, true} {
			rows, C := rc[0], rc[1]
			t.Run(fmt.Sprintf("%dx%d/acc=%v", rows, C, acc), func(t *testing.T) {
				testArithRow(t, d, rng, rows, C, acc)
			})
		}
	}
}

func testArithRow(t *testing.T, d *gpu.Device, rng *rand.Rand, rows, C int, acc bool) {
	n := rows * C
	norm := func(k int) []float64 { return reftest.Randn(rng, k, 1) }
	a, b, dy := norm(n), norm(C), norm(n)
	initA, initB := norm(n), norm(C)
	pad := int64(rows % 2)
	am, bm, dym := upload(t, d, a, pad), upload(t, d, b, 1-pad), upload(t, d, dy, 0)
	yAdd, yMul := zeros(t, d, n, 2), zeros(t, d, n, 0)
	daAdd, dbAdd := upload(t, d, initA, 0), upload(t, d, initB, 3)
	daMul, dbMul := upload(t, d, initA, pad), upload(t, d, initB, 0)
	r := d.NewRecorder(false)
	for _, err := range []error{
		AddRow(r, yAdd, am, bm, int64(rows), int64(C)),
		MulRow(r, yMul, am, bm, int64(rows), int64(C)),
		AddRowBackward(r, daAdd, dbAdd, dym, int64(rows), int64(C), acc),
		MulRowBackward(r, daMul, dbMul, dym, am, bm, int64(rows), int64(C), acc),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	run(t, r)
	want := make([]float64, n)
	AddRowRef(want, a, b)
	reftest.CheckNMSE(t, "add_row", download(t, yAdd, n), want, tolFP32)
	MulRowRef(want, a, b)
	reftest.CheckNMSE(t, "mul_row", download(t, yMul, n), want, tolFP32)
	da, db := AddRowBackwardRef(dy, C)
	reftest.CheckNMSE(t, "add_row da", download(t, daAdd, n), withAcc(initA, da, acc), tolFP32)
	reftest.CheckNMSE(t, "add_row db", download(t, dbAdd, C), withAcc(initB, db, acc), tolFP32)
	da, db = MulRowBackwardRef(dy, a, b)
	reftest.CheckNMSE(t, "mul_row da", download(t, daMul, n), withAcc(initA, da, acc), tolFP32)
	reftest.CheckNMSE(t, "mul_row db", download(t, dbMul, C), withAcc(initB, db, acc), tolFP32)
}

// Operands larger than one binding are split; a small limit exercises the
// splitting, including broadcasts whose pieces start mid-row.
func TestArithPieces(t *testing.T) {
	d := gputest.Device(t)
	arBindLimitForTest = 64
	defer func() { arBindLimitForTest = 0 }()
	rng := newRNG(34)
	for _, rc := range [][2]int{{50, 12}, {30, 7}, {3, 40}} {
		t.Run(fmt.Sprintf("%dx%d", rc[0], rc[1]), func(t *testing.T) {
			testArithRow(t, d, rng, rc[0], rc[1], true)
		})
	}
}

func TestArithErrors(t *testing.T) {
	d := gputest.Device(t)
	a := zeros(t, d, 10, 0)
	b := zeros(t, d, 4, 0)
	r := d.NewRecorder(false)
	if err := AddRow(r, a, a, b, 2, 5); err == nil {
		t.Errorf("add_row with a 4-element row vector for C=5 accepted")
	} else {
		t.Log(err)
	}
	if err := Add(r, a, a, b, 10); err == nil {
		t.Errorf("add of 10 elements with a 4-element b accepted")
	}
	if err := Mul(r, a, Mem{}, a, 3); err == nil {
		t.Errorf("mul with a nil input accepted")
	}
	if err := MulRow(r, a, a, b, 0, 4); err == nil {
		t.Errorf("mul_row with 0 rows accepted")
	}
	if err := ScaleBy(r, a, a, Mem{}, 3); err == nil {
		t.Errorf("scale_by without a scalar accepted")
	}
	if r.Err() != nil {
		t.Fatalf("recorder failed: %v", r.Err())
	}
}

// arBenchOp runs the registered benchmark op name at its default shapes,
// one sub-benchmark per shape, reporting GB/s.
func arBenchOp(b *testing.B, name string) {
	d := gputest.Device(b)
	op, err := LookupBench(name)
	if err != nil {
		b.Fatal(err)
	}
	for _, shape := range op.Shapes {
		b.Run(shape, func(b *testing.B) {
			c, err := op.Make(d, shape)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Free()
			once := func() {
				r := d.NewRecorder(false)
				if err := c.Record(r); err != nil {
					b.Fatal(err)
				}
				if err := r.Run(); err != nil {
					b.Fatal(err)
				}
			}
			once() // pipelines, first touch
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				once()
			}
			if s := b.Elapsed().Seconds(); s > 0 && c.Bytes > 0 {
				b.ReportMetric(c.Bytes*float64(b.N)/s/1e9, "GB/s")
			}
		})
	}
}

func BenchmarkAdd(b *testing.B)            { arBenchOp(b, "add") }
func BenchmarkMul(b *testing.B)            { arBenchOp(b, "mul") }
func BenchmarkAddTo(b *testing.B)          { arBenchOp(b, "add_to") }
func BenchmarkScale(b *testing.B)          { arBenchOp(b, "scale") }
func BenchmarkAddRow(b *testing.B)         { arBenchOp(b, "add_row") }
func BenchmarkMulRow(b *testing.B)         { arBenchOp(b, "mul_row") }
func BenchmarkAddRowBackward(b *testing.B) { arBenchOp(b, "add_row_backward") }

// The division constants are exact for every dividend, here checked on
// divisors up to 2^31 and dividends at the edges.
func TestArithMagicDivision(t *testing.T) {
	rng := newRNG(35)
	divisors := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 33, 64, 100, 129, 406, 1000, 1024, 4096, 6496, 32128, 65535, 65536, 1<<31 - 1, 1 << 31}
	for i := 0; i < 200; i++ {
		divisors = append(divisors, uint32(rng.Uint64N(1<<31))+1, uint32(rng.IntN(5000))+1)
	}
	for _, d := range divisors {
		m, sh := arMagic(d)
		ns := []uint32{0, 1, d - 1, d, d + 1, 2*d - 1, 2 * d, 1<<32 - 1, 1<<32 - 2, 1 << 31, 1<<26 - 1}
		for i := 0; i < 200; i++ {
			ns = append(ns, rng.Uint32(), uint32(rng.IntN(1<<26)))
		}
		for _, n := range ns {
			if got, want := arDivMagic(n, m, sh), n/d; got != want {
				t.Fatalf("%d / %d = %d, want %d", n, d, got, want)
			}
		}
	}
}
