package kernels

import (
	"fmt"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// Every backward is the adjoint of its forward: the gradient of
// L = w · F(x) by central differences is B(w).
func TestLayoutRefGrads(t *testing.T) {
	rng := newRNG(50)
	check := func(t *testing.T, what string, f func(x []float64) []float64, x, w, grad []float64) {
		t.Helper()
		num := reftest.NumGrad(func(v []float64) float64 { return reftest.Dot(w, f(v)) }, x, 1e-3)
		reftest.CheckNMSE(t, what, grad, num, 1e-20)
	}
	const B, Ta, Tb, C = 2, 3, 2, 4
	a, b := reftest.Randn(rng, B*Ta*C, 1), reftest.Randn(rng, B*Tb*C, 1)
	w := reftest.Randn(rng, B*(Ta+Tb)*C, 1)
	da, db := ConcatBackwardRef(w, B, Ta, Tb, C)
	check(t, "concat da", func(v []float64) []float64 { return ConcatRef(v, b, B, Ta, Tb, C) }, a, w, da)
	check(t, "concat db", func(v []float64) []float64 { return ConcatRef(a, v, B, Ta, Tb, C) }, b, w, db)
	x := reftest.Randn(rng, B*5*C, 1)
	ws := reftest.Randn(rng, B*2*C, 1)
	check(t, "slice", func(v []float64) []float64 { return SliceRef(v, B, 5, C, 1, 3) }, x, ws, SliceBackwardRef(ws, B, 5, C, 1, 3))
	const H, D, T = 3, 2, 5
	xh, wh := reftest.Randn(rng, B*T*H*D, 1), reftest.Randn(rng, B*T*H*D, 1)
	check(t, "split heads", func(v []float64) []float64 { return SplitHeadsRef(v, B, T, H, D) }, xh, wh, MergeHeadsRef(wh, B, H, T, D))
	check(t, "merge heads", func(v []float64) []float64 { return MergeHeadsRef(v, B, H, T, D) }, xh, wh, SplitHeadsRef(wh, B, T, H, D))
	check(t, "transpose", func(v []float64) []float64 { return TransposeRef(v, B, 3, 5) }, xh[:B*15], wh[:B*15], TransposeRef(wh[:B*15], B, 5, 3))
}

func TestStridedCopy(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(51)
	cases := []struct {
		shape, xs [4]int64
		xpad      int64
	}{
		{[4]int64{1, 1, 1, 1}, [4]int64{0, 0, 0, 1}, 0},
		{[4]int64{2, 3, 7, 33}, [4]int64{800, 250, 34, 1}, 1},   // padded rows
		{[4]int64{2, 4, 3, 5}, [4]int64{1, 2, 8, 24}, 2},        // permuted
		{[4]int64{1, 129, 1, 7}, [4]int64{0, 0, 0, 1}, 3},       // broadcast over dims 0-2
		{[4]int64{1, 2, 1000, 4}, [4]int64{0, 4000, 4, 1}, 0},   // vec4, long
		{[4]int64{2, 2, 2, 12}, [4]int64{0, 0, 12, 1}, 0},       // vec4 broadcast
		{[4]int64{5, 3, 2, 6}, [4]int64{7, 100, 31, 5}, 1},      // scattered
		{[4]int64{1, 1, 33, 129}, [4]int64{0, 0, 1, 33}, 2},     // transpose
		{[4]int64{1, 1, 1, 1000}, [4]int64{0, 0, 0, 3}, 1},      // strided inner
		{[4]int64{1, 2, 3, 4}, [4]int64{0, 13, 4, 1}, 0},        // inner 4, odd row stride
		{[4]int64{4, 2, 3, 8}, [4]int64{48, 24, 8, 1}, 2},       // contiguous, odd offset
		{[4]int64{1, 1, 1, 4097}, [4]int64{0, 0, 0, 1}, 0},      // 1-D
		{[4]int64{3, 3, 3, 3}, [4]int64{0, 0, 0, 0}, 0},         // one element everywhere
		{[4]int64{2, 2, 2, 2}, [4]int64{16, 8, 4, 2}, 0},        // every other
		{[4]int64{1, 8, 16, 64}, [4]int64{0, 64, 512, 1}, 0},    // head split pattern
		{[4]int64{1, 16, 8, 64}, [4]int64{0, 64 * 8, 64, 1}, 0}, // head merge pattern
		{[4]int64{1, 1, 129, 1000}, [4]int64{0, 0, 1000, 1}, 0}, // 129 rows
		{[4]int64{1, 1, 1000, 129}, [4]int64{0, 0, 1, 1000}, 0}, // transpose back
		{[4]int64{1, 1, 7, 8}, [4]int64{0, 0, 12, 1}, 0},        // vec4 padded rows
		{[4]int64{1, 1, 7, 8}, [4]int64{0, 0, 10, 1}, 0},        // rows not multiple of 4
		{[4]int64{1, 1, 1, 8}, [4]int64{0, 0, 0, 1}, 2},         // offset breaks vec4
		{[4]int64{1, 33, 1, 1}, [4]int64{0, 1, 0, 0}, 0},        // column
		{[4]int64{129, 1, 1, 1}, [4]int64{3, 0, 0, 0}, 0},       // strided outer
		{[4]int64{1, 1, 2, 129}, [4]int64{0, 0, 129, 1}, 0},     // awkward
		{[4]int64{1, 1, 1, 1}, [4]int64{0, 0, 0, 0}, 9},         // single element, pad
		{[4]int64{2, 1, 3, 4}, [4]int64{12, 0, 4, 1}, 4},        // vec4 with aligned pad
		{[4]int64{1, 2, 2, 7}, [4]int64{0, 28, 14, 2}, 0},       // strided inner (2)
		{[4]int64{1, 1, 3, 33}, [4]int64{0, 0, 33, 1}, 0},       // odd inner
		{[4]int64{1, 1, 1, 129}, [4]int64{0, 0, 0, 1}, 7},       // 1-D odd offset
		{[4]int64{1, 1, 5, 12}, [4]int64{0, 0, 0, 1}, 0},        // broadcast rows (vec4)
		{[4]int64{1, 1, 5, 7}, [4]int64{0, 0, 0, 1}, 0},         // broadcast rows
		{[4]int64{1, 1, 1000, 1}, [4]int64{0, 0, 1, 0}, 0},      // column of 1000
		{[4]int64{1, 1, 8, 8}, [4]int64{0, 0, 1, 8}, 0},         // square transpose
		{[4]int64{3, 1, 1, 4}, [4]int64{4, 0, 0, 1}, 0},         // tiny vec4
		{[4]int64{3, 1, 1, 4}, [4]int64{6, 0, 0, 1}, 0},         // tiny, misaligned rows
		{[4]int64{1, 1, 1, 2}, [4]int64{0, 0, 0, 1}, 1},         // two elements
		{[4]int64{1, 1, 1, 3}, [4]int64{0, 0, 0, 0}, 1},         // broadcast inner
		{[4]int64{1, 1, 1, 64}, [4]int64{0, 0, 0, 1}, 3},        // sixty-four, offset
		{[4]int64{1, 1, 3, 64}, [4]int64{0, 0, 64, 1}, 1},       // offset rows
		{[4]int64{1, 1, 3, 64}, [4]int64{0, 0, 68, 1}, 0},       // padded rows vec4
		{[4]int64{1, 1, 3, 64}, [4]int64{0, 0, 65, 1}, 0},       // padded rows scalar
		{[4]int64{1, 1, 1, 4}, [4]int64{0, 0, 0, 1}, 1},         // four, odd offset
		{[4]int64{1, 1, 2, 4}, [4]int64{0, 0, 5, 1}, 0},         // eight, odd rows
	}
	for ci, c := range cases {
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/%v/acc=%v", ci, c.shape, acc), func(t *testing.T) {
				testStridedCopy(t, d, rngFloats(rng), c.shape, c.xs, c.xpad, int64(ci%3), acc)
			})
		}
	}
}

// rngFloats returns a source of standard normal values rounded to float32.
func rngFloats(rng interface{ NormFloat64() float64 }) func(n int) []float64 {
	return func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(float32(rng.NormFloat64()))
		}
		return v
	}
}

func testStridedCopy(t *testing.T, d *gpu.Device, rnd func(int) []float64, shape, xs [4]int64, xpad, ypad int64, acc bool) {
	x := rnd(int(layoutExtent(shape, xs)))
	ys := Contiguous(shape)
	n := int(layoutExtent(shape, ys))
	init := rnd(n)
	xm, ym := upload(t, d, x, xpad), upload(t, d, init, ypad)
	r := d.NewRecorder(false)
	if err := StridedCopy(r, ym, ys, xm, xs, shape, acc); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	want := append([]float64(nil), init...)
	StridedCopyRef(want, ys, x, xs, shape, acc)
	tol := 0.0
	if acc {
		tol = tolFP32
	}
	reftest.CheckNMSE(t, "y", download(t, ym, n), want, tol)
}

func TestConcatSlice(t *testing.T) {
	d := gputest.Device(t)
	rnd := rngFloats(newRNG(52))
	for ci, c := range [][4]int{{1, 1, 1, 1}, {2, 7, 33, 5}, {3, 15, 26, 64}, {2, 1, 129, 7}, {1, 33, 1, 1000}} {
		B, Ta, Tb, C := c[0], c[1], c[2], c[3]
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx(%d+%d)x%d/acc=%v", B, Ta, Tb, C, acc), func(t *testing.T) {
				pad := int64(ci % 2)
				T := Ta + Tb
				a, b, dy := rnd(B*Ta*C), rnd(B*Tb*C), rnd(B*T*C)
				initA, initB, initX := rnd(B*Ta*C), rnd(B*Tb*C), rnd(B*T*C)
				am, bm, dym := upload(t, d, a, pad), upload(t, d, b, 0), upload(t, d, dy, pad)
				y := zeros(t, d, B*T*C, 1)
				da, db := upload(t, d, initA, 0), upload(t, d, initB, pad)
				t0, t1 := int64(Ta/2), int64(Ta+Tb/2+1)
				s := zeros(t, d, B*int(t1-t0)*C, pad)
				dx := upload(t, d, initX, 0)
				r := d.NewRecorder(false)
				b4, ta, tb, c4 := int64(B), int64(Ta), int64(Tb), int64(C)
				for _, err := range []error{
					Concat(r, y, am, bm, b4, ta, tb, c4),
					ConcatBackward(r, da, db, dym, b4, ta, tb, c4, acc),
					Slice(r, s, dym, b4, ta+tb, c4, t0, t1),
					SliceBackward(r, dx, s, b4, ta+tb, c4, t0, t1, acc),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				run(t, r)
				tol := 0.0
				if acc {
					tol = tolFP32
				}
				reftest.CheckNMSE(t, "concat", download(t, y, B*T*C), ConcatRef(a, b, B, Ta, Tb, C), 0)
				wa, wb := ConcatBackwardRef(dy, B, Ta, Tb, C)
				reftest.CheckNMSE(t, "concat da", download(t, da, B*Ta*C), withAcc(initA, wa, acc), tol)
				reftest.CheckNMSE(t, "concat db", download(t, db, B*Tb*C), withAcc(initB, wb, acc), tol)
				ws := SliceRef(dy, B, T, C, int(t0), int(t1))
				reftest.CheckNMSE(t, "slice", download(t, s, len(ws)), ws, 0)
				reftest.CheckNMSE(t, "slice dx", download(t, dx, B*T*C), withAcc(initX, SliceBackwardRef(ws, B, T, C, int(t0), int(t1)), acc), tol)
			})
		}
	}
}

func TestHeads(t *testing.T) {
	d := gputest.Device(t)
	rnd := rngFloats(newRNG(53))
	for ci, c := range [][4]int{{1, 1, 1, 1}, {2, 7, 3, 5}, {2, 33, 4, 64}, {1, 129, 2, 8}, {3, 5, 16, 4}} {
		B, T, H, D := c[0], c[1], c[2], c[3]
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("B=%d/T=%d/H=%d/D=%d/acc=%v", B, T, H, D, acc), func(t *testing.T) {
				n := B * T * H * D
				pad := int64(ci % 2 * 3)
				x, dy, init := rnd(n), rnd(n), rnd(n)
				xm, dym := upload(t, d, x, pad), upload(t, d, dy, 0)
				split, merged := zeros(t, d, n, 0), zeros(t, d, n, pad)
				dSplit, dMerge := upload(t, d, init, pad), upload(t, d, init, 1)
				r := d.NewRecorder(false)
				b, tt, h, dd := int64(B), int64(T), int64(H), int64(D)
				for _, err := range []error{
					SplitHeads(r, split, xm, b, tt, h, dd),
					MergeHeads(r, merged, split, b, h, tt, dd),
					SplitHeadsBackward(r, dSplit, dym, b, tt, h, dd, acc),
					MergeHeadsBackward(r, dMerge, dym, b, h, tt, dd, acc),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				run(t, r)
				tol := 0.0
				if acc {
					tol = tolFP32
				}
				reftest.CheckNMSE(t, "split", download(t, split, n), SplitHeadsRef(x, B, T, H, D), 0)
				reftest.CheckNMSE(t, "merge", download(t, merged, n), x, 0)
				reftest.CheckNMSE(t, "split backward", download(t, dSplit, n), withAcc(init, MergeHeadsRef(dy, B, H, T, D), acc), tol)
				reftest.CheckNMSE(t, "merge backward", download(t, dMerge, n), withAcc(init, SplitHeadsRef(dy, B, T, H, D), acc), tol)
			})
		}
	}
}

func TestTranspose(t *testing.T) {
	d := gputest.Device(t)
	rnd := rngFloats(newRNG(54))
	for ci, c := range [][3]int{{1, 1, 1}, {3, 7, 33}, {2, 129, 5}, {1, 1000, 7}, {2, 8, 8}} {
		batch, rows, cols := c[0], c[1], c[2]
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%dx%d/acc=%v", batch, rows, cols, acc), func(t *testing.T) {
				n := batch * rows * cols
				x, dy, init := rnd(n), rnd(n), rnd(n)
				xm, dym := upload(t, d, x, int64(ci)), upload(t, d, dy, 0)
				y, dx := zeros(t, d, n, 1), upload(t, d, init, 0)
				r := d.NewRecorder(false)
				b, rr, cc := int64(batch), int64(rows), int64(cols)
				if err := Transpose2D(r, y, xm, b, rr, cc); err != nil {
					t.Fatal(err)
				}
				if err := Transpose2DBackward(r, dx, dym, b, rr, cc, acc); err != nil {
					t.Fatal(err)
				}
				run(t, r)
				tol := 0.0
				if acc {
					tol = tolFP32
				}
				reftest.CheckNMSE(t, "transpose", download(t, y, n), TransposeRef(x, batch, rows, cols), 0)
				reftest.CheckNMSE(t, "transpose backward", download(t, dx, n), withAcc(init, TransposeRef(dy, batch, cols, rows), acc), tol)
			})
		}
	}
}

// Views larger than one binding are split into blocks.
func TestLayoutPieces(t *testing.T) {
	d := gputest.Device(t)
	arBindLimitForTest = 64
	defer func() { arBindLimitForTest = 0 }()
	rnd := rngFloats(newRNG(55))
	for _, c := range []struct{ shape, xs [4]int64 }{
		{[4]int64{2, 3, 7, 33}, [4]int64{800, 250, 34, 1}},
		{[4]int64{1, 2, 16, 64}, [4]int64{0, 64, 128, 1}},
		{[4]int64{1, 1, 1, 300}, [4]int64{0, 0, 0, 1}},
		{[4]int64{1, 1, 40, 30}, [4]int64{0, 0, 1, 40}},
	} {
		for _, acc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/acc=%v", c.shape, acc), func(t *testing.T) {
				testStridedCopy(t, d, rnd, c.shape, c.xs, 1, 0, acc)
			})
		}
	}
}

func TestLayoutErrors(t *testing.T) {
	d := gputest.Device(t)
	x := zeros(t, d, 24, 0)
	r := d.NewRecorder(false)
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s accepted", what)
		} else {
			t.Log(err)
		}
	}
	check("concat into a short y", Concat(r, x.At(4), x, x, 1, 2, 2, 6))
	check("slice past the end", Slice(r, x, x, 1, 4, 3, 2, 5))
	check("empty slice", Slice(r, x, x, 1, 4, 3, 2, 2))
	check("split heads of too little data", SplitHeads(r, x, x, 2, 2, 2, 4))
	check("negative stride", StridedCopy(r, x, [4]int64{0, 0, 0, 1}, x.At(10), [4]int64{0, 0, 0, -1}, [4]int64{1, 1, 1, 4}, false))
	check("zero y stride", StridedCopy(r, x, [4]int64{0, 0, 0, 0}, x, [4]int64{0, 0, 0, 1}, [4]int64{1, 1, 1, 4}, false))
	check("transpose of a freed buffer", func() error {
		b := zeros(t, d, 4, 0)
		b.Buf.Free()
		return Transpose2D(r, x, b, 1, 2, 2)
	}())
	if r.Err() != nil {
		t.Fatalf("recorder failed: %v", r.Err())
	}
}

func BenchmarkSplitHeads(b *testing.B) { arBenchOp(b, "split_heads") }
func BenchmarkMergeHeads(b *testing.B) { arBenchOp(b, "merge_heads") }
func BenchmarkConcat(b *testing.B)     { arBenchOp(b, "concat") }
func BenchmarkTranspose(b *testing.B)  { arBenchOp(b, "transpose") }
