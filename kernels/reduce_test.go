package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// uploadInts copies v into a new int32 buffer with pad spare elements
// before it.
func uploadInts(t testing.TB, d *gpu.Device, v []int32, pad int64) Mem {
	t.Helper()
	b, err := d.Alloc(4 * (int64(len(v)) + pad + 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	if err := gpu.WriteSlice(b, pad, v); err != nil {
		t.Fatal(err)
	}
	return Mem{Buf: b, Off: pad}
}

// downloadInts reads n int32 elements of m.
func downloadInts(t testing.TB, m Mem, n int) []int32 {
	t.Helper()
	v := make([]int32, n)
	if err := gpu.ReadSlice(m.Buf, m.Off, v); err != nil {
		t.Fatal(err)
	}
	return v
}

func checkInts(t testing.TB, what string, got, want []int32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: element %d = %d, want %d", what, i, got[i], want[i])
		}
	}
}

func TestReduceRefGrads(t *testing.T) {
	rng := newRNG(40)
	const outer, axis, inner = 2, 5, 3
	x := reftest.Randn(rng, outer*axis*inner, 1)
	w := reftest.Randn(rng, outer*inner, 1)
	for _, scale := range []float64{1, 1.0 / axis} {
		t.Run(fmt.Sprintf("sum/scale=%.2f", scale), func(t *testing.T) {
			dx := make([]float64, len(x))
			SumBackwardRef(dx, w, outer, axis, inner, scale)
			num := reftest.NumGrad(func(v []float64) float64 {
				y := make([]float64, outer*inner)
				SumRef(y, v, outer, axis, inner, scale)
				return reftest.Dot(w, y)
			}, x, 1e-5)
			reftest.CheckNMSE(t, "dx", dx, num, 1e-16)
		})
	}
	t.Run("max_pool", func(t *testing.T) {
		mask := []float64{1, 0, 1, 1, 0, 0, 0, 0, 0, 0} // second row fully masked
		for _, m := range [][]float64{nil, mask} {
			y, idx := make([]float64, outer*inner), make([]int32, outer*inner)
			MaxPoolRef(y, idx, x, m, outer, axis, inner)
			dx := make([]float64, len(x))
			MaxBackwardRef(dx, w, idx, outer, axis, inner)
			num := reftest.NumGrad(func(v []float64) float64 {
				y := make([]float64, outer*inner)
				MaxPoolRef(y, make([]int32, outer*inner), v, m, outer, axis, inner)
				return reftest.Dot(w, y)
			}, x, 1e-6)
			reftest.CheckNMSE(t, "dx", dx, num, 1e-16)
		}
	})
	t.Run("cosine", func(t *testing.T) {
		const n, C = 3, 6
		a, b, dy := reftest.Randn(rng, n*C, 1), reftest.Randn(rng, n*C, 1), reftest.Randn(rng, n, 1)
		da, db := CosineBackwardRef(dy, a, b, n, C)
		loss := func(a, b []float64) float64 {
			y := make([]float64, n)
			CosineRef(y, a, b, n, C)
			return reftest.Dot(dy, y)
		}
		reftest.CheckNMSE(t, "da", da, reftest.NumGrad(func(v []float64) float64 { return loss(v, b) }, a, 1e-6), 1e-14)
		reftest.CheckNMSE(t, "db", db, reftest.NumGrad(func(v []float64) float64 { return loss(a, v) }, b, 1e-6), 1e-14)
		// A row of norm below ε: the clamped norm is a constant.
		small := make([]float64, n*C)
		for i := range small {
			small[i] = a[i] * 1e-12
		}
		da, _ = CosineBackwardRef(dy, small, b, n, C)
		reftest.CheckNMSE(t, "da (tiny a)", da, reftest.NumGrad(func(v []float64) float64 { return loss(v, b) }, small, 1e-14), 1e-12)
	})
}

// reduceCases are (outer, axis, inner) shapes.
var reduceCases = [][3]int{
	{1, 1, 1}, {7, 33, 1}, {3, 129, 4}, {2, 1000, 7}, {129, 7, 33}, {1, 1000, 1},
	{5, 3, 1000}, {33, 129, 8}, {1, 7, 1}, {4, 16, 1},
}

func TestReduce(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(41)
	for ci, c := range reduceCases {
		outer, axis, inner := c[0], c[1], c[2]
		pad := int64(ci % 3)
		t.Run(fmt.Sprintf("%dx%dx%d/pad=%d", outer, axis, inner, pad), func(t *testing.T) {
			n, m := outer*axis*inner, outer*inner
			x := reftest.Round32(reftest.Randn(rng, n, 1))
			// Ties: the first maximum must win.
			if ci%2 == 1 {
				for i := range x {
					x[i] = math.Round(x[i])
				}
			}
			dy := reftest.Round32(reftest.Randn(rng, m, 1))
			init := reftest.Randn(rng, n, 1)
			xm, dym := upload(t, d, x, pad), upload(t, d, dy, pad+1)
			sum, mean, mx := zeros(t, d, m, pad), zeros(t, d, m, 0), zeros(t, d, m, 1)
			idx := uploadInts(t, d, make([]int32, m), pad)
			dSum, dMean, dMax := upload(t, d, init, 0), upload(t, d, init, pad), upload(t, d, init, 2)
			dSumAcc, dMaxAcc := upload(t, d, init, 1), upload(t, d, init, pad)
			r := d.NewRecorder(false)
			o, a, i := int64(outer), int64(axis), int64(inner)
			for _, err := range []error{
				Sum(r, sum, xm, o, a, i),
				Mean(r, mean, xm, o, a, i),
				Max(r, mx, idx, xm, o, a, i),
				SumBackward(r, dSum, dym, o, a, i, false),
				MeanBackward(r, dMean, dym, o, a, i, false),
				SumBackward(r, dSumAcc, dym, o, a, i, true),
				MaxBackward(r, dMax, dym, idx, o, a, i, false),
				MaxBackward(r, dMaxAcc, dym, idx, o, a, i, true),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			want := make([]float64, m)
			SumRef(want, x, outer, axis, inner, 1)
			reftest.CheckNMSE(t, "sum", download(t, sum, m), want, tolFP32)
			SumRef(want, x, outer, axis, inner, 1/float64(axis))
			reftest.CheckNMSE(t, "mean", download(t, mean, m), want, tolFP32)
			wantIdx := make([]int32, m)
			MaxPoolRef(want, wantIdx, x, nil, outer, axis, inner)
			reftest.CheckNMSE(t, "max", download(t, mx, m), want, 0)
			checkInts(t, "argmax", downloadInts(t, idx, m), wantIdx)

			dx := make([]float64, n)
			SumBackwardRef(dx, dy, outer, axis, inner, 1)
			reftest.CheckNMSE(t, "sum backward", download(t, dSum, n), dx, tolFP32)
			reftest.CheckNMSE(t, "sum backward acc", download(t, dSumAcc, n), withAcc(init, dx, true), tolFP32)
			SumBackwardRef(dx, dy, outer, axis, inner, 1/float64(axis))
			reftest.CheckNMSE(t, "mean backward", download(t, dMean, n), dx, tolFP32)
			MaxBackwardRef(dx, dy, wantIdx, outer, axis, inner)
			reftest.CheckNMSE(t, "max backward", download(t, dMax, n), dx, 0)
			reftest.CheckNMSE(t, "max backward acc", download(t, dMaxAcc, n), withAcc(init, dx, true), tolFP32)
		})
	}
}

func TestMaxPool(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(42)
	for ci, c := range [][3]int{{1, 1, 1}, {2, 7, 33}, {3, 129, 8}, {8, 33, 1000}, {4, 5, 1}} {
		for _, masked := range []bool{false, true} {
			B, T, C := c[0], c[1], c[2]
			t.Run(fmt.Sprintf("%dx%dx%d/mask=%v", B, T, C, masked), func(t *testing.T) {
				pad := int64(ci % 2)
				x, dy := reftest.Round32(reftest.Randn(rng, B*T*C, 1)), reftest.Round32(reftest.Randn(rng, B*C, 1))
				init := reftest.Randn(rng, B*T*C, 1)
				var mask []float64
				maskM := Mem{}
				if masked {
					mask = make([]float64, B*T)
					for b := 0; b < B; b++ {
						for t := 0; t < T; t++ {
							// Batch row 1 is fully masked; others keep a prefix.
							if b != 1 && t <= (b*7+3)%T {
								mask[b*T+t] = 1
							}
						}
					}
					maskM = upload(t, d, mask, pad+1)
				}
				xm, dym := upload(t, d, x, pad), upload(t, d, dy, 0)
				y := zeros(t, d, B*C, pad)
				idx := uploadInts(t, d, make([]int32, B*C), 0)
				dx, dxAcc := upload(t, d, init, 1), upload(t, d, init, pad)
				r := d.NewRecorder(false)
				b3, t3, c3 := int64(B), int64(T), int64(C)
				for _, err := range []error{
					MaxPool(r, y, idx, xm, maskM, b3, t3, c3),
					MaxPoolBackward(r, dx, dym, idx, b3, t3, c3, false),
					MaxPoolBackward(r, dxAcc, dym, idx, b3, t3, c3, true),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				run(t, r)
				want, wantIdx := make([]float64, B*C), make([]int32, B*C)
				MaxPoolRef(want, wantIdx, x, mask, B, T, C)
				reftest.CheckNMSE(t, "y", download(t, y, B*C), want, 0)
				checkInts(t, "idx", downloadInts(t, idx, B*C), wantIdx)
				wdx := make([]float64, B*T*C)
				MaxBackwardRef(wdx, dy, wantIdx, B, T, C)
				reftest.CheckNMSE(t, "dx", download(t, dx, B*T*C), wdx, 0)
				reftest.CheckNMSE(t, "dx acc", download(t, dxAcc, B*T*C), withAcc(init, wdx, true), tolFP32)
			})
		}
	}
}

func TestCosine(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(43)
	for ci, c := range [][2]int{{1, 3}, {7, 33}, {129, 8}, {8, 1000}, {40, 1024}, {3, 7}} {
		n, C := c[0], c[1]
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%d/acc=%v", n, C, acc), func(t *testing.T) {
				pad := int64(ci % 2)
				a, b, dy := reftest.Randn(rng, n*C, 1), reftest.Randn(rng, n*C, 2), reftest.Randn(rng, n, 1)
				if n > 2 {
					clear(a[C : 2*C]) // a zero row: cos 0, finite gradients
				}
				initA, initB := reftest.Randn(rng, n*C, 1), reftest.Randn(rng, n*C, 1)
				am, bm, dym := upload(t, d, a, pad), upload(t, d, b, 0), upload(t, d, dy, pad)
				y := zeros(t, d, n, 1)
				da, db := upload(t, d, initA, pad), upload(t, d, initB, 0)
				daOnly := upload(t, d, initA, 0)
				r := d.NewRecorder(false)
				for _, err := range []error{
					Cosine(r, y, am, bm, int64(n), int64(C)),
					CosineBackward(r, da, db, dym, am, bm, int64(n), int64(C), acc),
					CosineBackward(r, daOnly, Mem{}, dym, am, bm, int64(n), int64(C), acc),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				run(t, r)
				want := make([]float64, n)
				CosineRef(want, a, b, n, C)
				reftest.CheckNMSE(t, "cos", download(t, y, n), want, tolFP32)
				wa, wb := CosineBackwardRef(dy, a, b, n, C)
				reftest.CheckNMSE(t, "da", download(t, da, n*C), withAcc(initA, wa, acc), tolFP32)
				reftest.CheckNMSE(t, "db", download(t, db, n*C), withAcc(initB, wb, acc), tolFP32)
				reftest.CheckNMSE(t, "da alone", download(t, daOnly, n*C), withAcc(initA, wa, acc), tolFP32)
			})
		}
	}
}

func TestSumSquares(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(44)
	for _, n := range append(awkward, 1<<20+3) {
		for _, pad := range []int64{0, 3} {
			t.Run(fmt.Sprintf("n=%d/pad=%d", n, pad), func(t *testing.T) {
				x := reftest.Randn(rng, n, 1)
				xm, y := upload(t, d, x, pad), zeros(t, d, 1, pad)
				r := d.NewRecorder(false)
				if err := SumSquares(r, y, xm, int64(n)); err != nil {
					t.Fatal(err)
				}
				run(t, r)
				reftest.CheckNMSE(t, "sum of squares", download(t, y, 1), []float64{SumSquaresRef(x)}, tolFP32)
			})
		}
	}
}

// Operands larger than one binding: split by outer slices, or by runs of
// the axis (sums accumulate across runs; max cannot).
func TestReducePieces(t *testing.T) {
	d := gputest.Device(t)
	arBindLimitForTest = 64
	defer func() { arBindLimitForTest = 0 }()
	rng := newRNG(45)
	for _, c := range [][3]int{{3, 100, 1}, {2, 50, 4}, {9, 7, 5}, {3, 40, 12}} {
		outer, axis, inner := c[0], c[1], c[2]
		t.Run(fmt.Sprintf("%dx%dx%d", outer, axis, inner), func(t *testing.T) {
			n, m := outer*axis*inner, outer*inner
			x, dy := reftest.Round32(reftest.Randn(rng, n, 1)), reftest.Round32(reftest.Randn(rng, m, 1))
			xm, dym := upload(t, d, x, 1), upload(t, d, dy, 0)
			sum, ss := zeros(t, d, m, 0), zeros(t, d, 1, 0)
			dx := upload(t, d, reftest.Randn(rng, n, 1), 0)
			r := d.NewRecorder(false)
			o, a, i := int64(outer), int64(axis), int64(inner)
			for _, err := range []error{
				Sum(r, sum, xm, o, a, i),
				SumSquares(r, ss, xm, int64(n)),
				MeanBackward(r, dx, dym, o, a, i, false),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			fits := axis*inner <= 64
			idx := uploadInts(t, d, make([]int32, m), 0)
			mx := zeros(t, d, m, 0)
			if err := Max(r, mx, idx, xm, o, a, i); (err == nil) != fits {
				t.Fatalf("max of %dx%d slices with 64-element bindings: error %v", axis, inner, err)
			}
			run(t, r)
			want := make([]float64, m)
			SumRef(want, x, outer, axis, inner, 1)
			reftest.CheckNMSE(t, "sum", download(t, sum, m), want, tolFP32)
			reftest.CheckNMSE(t, "sum of squares", download(t, ss, 1), []float64{SumSquaresRef(x)}, tolFP32)
			wdx := make([]float64, n)
			SumBackwardRef(wdx, dy, outer, axis, inner, 1/float64(axis))
			reftest.CheckNMSE(t, "mean backward", download(t, dx, n), wdx, tolFP32)
			if fits {
				wantIdx := make([]int32, m)
				MaxPoolRef(want, wantIdx, x, nil, outer, axis, inner)
				reftest.CheckNMSE(t, "max", download(t, mx, m), want, 0)
				checkInts(t, "argmax", downloadInts(t, idx, m), wantIdx)
			}
			// The max backward scatters by runs of the axis too.
			wantIdx := make([]int32, m)
			MaxPoolRef(make([]float64, m), wantIdx, x, nil, outer, axis, inner)
			im := uploadInts(t, d, wantIdx, 1)
			r = d.NewRecorder(false)
			if err := MaxBackward(r, dx, dym, im, o, a, i, false); err != nil {
				t.Fatal(err)
			}
			run(t, r)
			MaxBackwardRef(wdx, dy, wantIdx, outer, axis, inner)
			reftest.CheckNMSE(t, "max backward", download(t, dx, n), wdx, 0)
		})
	}
}

func TestReduceErrors(t *testing.T) {
	d := gputest.Device(t)
	x := zeros(t, d, 12, 0)
	y := zeros(t, d, 3, 0)
	r := d.NewRecorder(false)
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s accepted", what)
		} else {
			t.Log(err)
		}
	}
	check("sum into a 3-element y of a 4x3 result", Sum(r, y, x, 4, 1, 3))
	check("sum with a zero axis", Sum(r, y, x, 3, 0, 1))
	check("max without idx", Max(r, y, Mem{}, x, 3, 4, 1))
	check("max_pool with a short mask", MaxPool(r, y, y, x, y, 1, 4, 3))
	check("cosine of rows longer than the data", Cosine(r, y, x, x, 3, 5))
	check("sum_squares of a nil x", SumSquares(r, y, Mem{}, 4))
	if r.Err() != nil {
		t.Fatalf("recorder failed: %v", r.Err())
	}
}

func BenchmarkSum(b *testing.B)            { arBenchOp(b, "sum") }
func BenchmarkMax(b *testing.B)            { arBenchOp(b, "max") }
func BenchmarkSumBackward(b *testing.B)    { arBenchOp(b, "sum_backward") }
func BenchmarkMaxPool(b *testing.B)        { arBenchOp(b, "max_pool") }
func BenchmarkCosine(b *testing.B)         { arBenchOp(b, "cosine") }
func BenchmarkCosineBackward(b *testing.B) { arBenchOp(b, "cosine_backward") }
func BenchmarkSumSquares(b *testing.B)     { arBenchOp(b, "sum_squares") }

// The shaders' paths for workgroups of several subgroups (shared memory and
// barriers), which GPUs take and lavapipe's own choice avoids.
func TestReduceWorkgroupShapes(t *testing.T) {
	d := gputest.Device(t)
	sg := d.Info().MaxSubgroupSize
	if sg == 0 || 8*sg > d.Info().MaxWorkgroupInvocations {
		t.Skip("subgroup size unknown or too large")
	}
	reduceShapesForTest = &struct{ wg, wx, wy uint32 }{8 * sg, 8, 3}
	defer func() { reduceShapesForTest = nil }()
	t.Run("reduce", TestReduce)
	t.Run("max_pool", TestMaxPool)
	t.Run("cosine", TestCosine)
	t.Run("sum_squares", TestSumSquares)
	t.Run("arith_row", TestArithRow)
	t.Run("partition", TestPartition)
	t.Run("contrastive", TestContrastive)
	rng := newRNG(46)
	for _, c := range []xentCase{{7, 1000, 3, 1}, {33, 129, 2, 0}, {3, 4000, 0, 0}} {
		t.Run(fmt.Sprintf("cross_entropy/%dx%d", c.n, c.V), func(t *testing.T) {
			testCrossEntropy(t, d, rng, c, true)
		})
	}
}
