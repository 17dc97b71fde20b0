package kernels

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// normCases are the (rows, C, pad) shapes the norm tests run: awkward row
// lengths, batched rows, odd offsets.
func tlNormCases() [][3]int {
	var cs [][3]int
	for _, c := range awkward {
		cs = append(cs, [3]int{3, c, 0})
	}
	return append(cs, [3]int{1, 1, 1}, [3]int{33, 7, 3}, [3]int{129, 33, 1}, [3]int{7, 1000, 2}, [3]int{1000, 5, 3}, [3]int{8, 1024, 0})
}

// addTo returns a + b elementwise (the expected result of accumulate).
func tlAdd(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// tlF32 rounds v to float32, as upload stores it.
func tlF32(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(float32(x))
	}
	return out
}

// The references' gradients agree with central finite differences of
// L = Σ g ⊙ y.
func TestNormRefGradients(t *testing.T) {
	rng := newRNG(7)
	const rows, C, eps = 3, 5, 1e-6
	x, w, b, g := reftest.Randn(rng, rows*C, 1), reftest.Randn(rng, C, 1), reftest.Randn(rng, C, 1), reftest.Randn(rng, rows*C, 1)
	y := make([]float64, rows*C)
	t.Run("rmsnorm", func(t *testing.T) {
		loss := func(x, w []float64) float64 { RMSNormRef(y, nil, x, w, rows, C, eps); return reftest.Dot(g, y) }
		rstd := make([]float64, rows)
		RMSNormRef(y, rstd, x, w, rows, C, eps)
		dx, dw := make([]float64, rows*C), make([]float64, C)
		RMSNormBackwardRef(dx, g, x, w, rstd, rows, C)
		RMSNormWeightGradRef(dw, g, x, rstd, rows, C)
		reftest.CheckNMSE(t, "dx", dx, reftest.NumGrad(func(v []float64) float64 { return loss(v, w) }, x, 1e-5), 1e-16)
		reftest.CheckNMSE(t, "dw", dw, reftest.NumGrad(func(v []float64) float64 { return loss(x, v) }, w, 1e-5), 1e-16)
	})
	t.Run("layernorm", func(t *testing.T) {
		loss := func(x, w, b []float64) float64 {
			LayerNormRef(y, nil, nil, x, w, b, rows, C, eps)
			return reftest.Dot(g, y)
		}
		mean, rstd := make([]float64, rows), make([]float64, rows)
		LayerNormRef(y, mean, rstd, x, w, b, rows, C, eps)
		dx, dw, db := make([]float64, rows*C), make([]float64, C), make([]float64, C)
		LayerNormBackwardRef(dx, g, x, w, mean, rstd, rows, C)
		LayerNormWeightGradRef(dw, db, g, x, mean, rstd, rows, C)
		reftest.CheckNMSE(t, "dx", dx, reftest.NumGrad(func(v []float64) float64 { return loss(v, w, b) }, x, 1e-5), 1e-16)
		reftest.CheckNMSE(t, "dw", dw, reftest.NumGrad(func(v []float64) float64 { return loss(x, v, b) }, w, 1e-5), 1e-16)
		reftest.CheckNMSE(t, "db", db, reftest.NumGrad(func(v []float64) float64 { return loss(x, w, v) }, b, 1e-5), 1e-16)
	})
}

func TestRMSNorm(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(11)
	for _, cs := range tlNormCases() {
		rows, C, pad := cs[0], cs[1], int64(cs[2])
		t.Run(fmt.Sprintf("%dx%d/pad=%d", rows, C, pad), func(t *testing.T) {
			eps := float32(1e-6)
			if C == 1 {
				eps = 0.5 // otherwise dx is about eps/x², all rounding error
			}
			x, w, dy := tlF32(reftest.Randn(rng, rows*C, 1.5)), tlF32(reftest.Randn(rng, C, 1)), tlF32(reftest.Randn(rng, rows*C, 1))
			dx0, dw0 := tlF32(reftest.Randn(rng, rows*C, 1)), tlF32(reftest.Randn(rng, C, 1))
			xm, wm, dym := upload(t, d, x, pad), upload(t, d, w, pad+1), upload(t, d, dy, 2*pad)
			ym, rm := zeros(t, d, rows*C, pad+2), zeros(t, d, rows, pad+3)
			dxm, dxa := zeros(t, d, rows*C, pad+1), upload(t, d, dx0, pad)
			dwm, dwa := zeros(t, d, C, pad+3), upload(t, d, dw0, pad+2)
			r := d.NewRecorder(false)
			steps := []error{
				RMSNorm(r, ym, rm, xm, wm, rows, C, eps),
				RMSNormBackward(r, dxm, dym, xm, wm, rm, rows, C, false),
				RMSNormBackward(r, dxa, dym, xm, wm, rm, rows, C, true),
				RMSNormWeightGrad(r, dwm, dym, xm, rm, rows, C, false),
				RMSNormWeightGrad(r, dwa, dym, xm, rm, rows, C, true),
			}
			for _, err := range steps {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			y, rstd := make([]float64, rows*C), make([]float64, rows)
			RMSNormRef(y, rstd, x, w, rows, C, float64(eps))
			dx, dw := make([]float64, rows*C), make([]float64, C)
			RMSNormBackwardRef(dx, dy, x, w, rstd, rows, C)
			RMSNormWeightGradRef(dw, dy, x, rstd, rows, C)
			reftest.CheckNMSE(t, "y", download(t, ym, rows*C), y, tolFP32)
			reftest.CheckNMSE(t, "rstd", download(t, rm, rows), rstd, tolFP32)
			reftest.CheckNMSE(t, "dx", download(t, dxm, rows*C), dx, tolFP32)
			reftest.CheckNMSE(t, "dx accumulated", download(t, dxa, rows*C), tlAdd(dx0, dx), tolFP32)
			reftest.CheckNMSE(t, "dw", download(t, dwm, C), dw, tolFP32)
			reftest.CheckNMSE(t, "dw accumulated", download(t, dwa, C), tlAdd(dw0, dw), tolFP32)
		})
	}
}

func TestLayerNorm(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(12)
	for _, cs := range tlNormCases() {
		rows, C, pad := cs[0], cs[1], int64(cs[2])
		t.Run(fmt.Sprintf("%dx%d/pad=%d", rows, C, pad), func(t *testing.T) {
			const eps = 1e-5
			x := tlF32(reftest.Randn(rng, rows*C, 2))
			for i := range x {
				x[i] += 3 // a mean far from 0
			}
			w, b, dy := tlF32(reftest.Randn(rng, C, 1)), tlF32(reftest.Randn(rng, C, 1)), tlF32(reftest.Randn(rng, rows*C, 1))
			dx0, dw0, db0 := tlF32(reftest.Randn(rng, rows*C, 1)), tlF32(reftest.Randn(rng, C, 1)), tlF32(reftest.Randn(rng, C, 1))
			xm, wm, bm, dym := upload(t, d, x, pad), upload(t, d, w, pad+1), upload(t, d, b, pad+2), upload(t, d, dy, 2*pad)
			ym, mm, rm := zeros(t, d, rows*C, pad+2), zeros(t, d, rows, pad+1), zeros(t, d, rows, pad+3)
			dxm, dxa := zeros(t, d, rows*C, pad+1), upload(t, d, dx0, pad)
			dwm, dbm := zeros(t, d, C, pad+3), zeros(t, d, C, pad)
			dwa, dba := upload(t, d, dw0, pad+2), upload(t, d, db0, pad+1)
			dbOnly := zeros(t, d, C, 1)
			r := d.NewRecorder(false)
			steps := []error{
				LayerNorm(r, ym, mm, rm, xm, wm, bm, rows, C, eps),
				LayerNormBackward(r, dxm, dym, xm, wm, mm, rm, rows, C, false),
				LayerNormBackward(r, dxa, dym, xm, wm, mm, rm, rows, C, true),
				LayerNormWeightGrad(r, dwm, dbm, dym, xm, mm, rm, rows, C, false),
				LayerNormWeightGrad(r, dwa, dba, dym, xm, mm, rm, rows, C, true),
				LayerNormWeightGrad(r, Mem{}, dbOnly, dym, Mem{}, Mem{}, Mem{}, rows, C, false),
			}
			for _, err := range steps {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			y, mean, rstd := make([]float64, rows*C), make([]float64, rows), make([]float64, rows)
			LayerNormRef(y, mean, rstd, x, w, b, rows, C, eps)
			dx, dw, db := make([]float64, rows*C), make([]float64, C), make([]float64, C)
			LayerNormBackwardRef(dx, dy, x, w, mean, rstd, rows, C)
			LayerNormWeightGradRef(dw, db, dy, x, mean, rstd, rows, C)
			reftest.CheckNMSE(t, "y", download(t, ym, rows*C), y, tolFP32)
			reftest.CheckNMSE(t, "mean", download(t, mm, rows), mean, tolFP32)
			reftest.CheckNMSE(t, "rstd", download(t, rm, rows), rstd, tolFP32)
			reftest.CheckNMSE(t, "dx", download(t, dxm, rows*C), dx, tolFP32)
			reftest.CheckNMSE(t, "dx accumulated", download(t, dxa, rows*C), tlAdd(dx0, dx), tolFP32)
			reftest.CheckNMSE(t, "dw", download(t, dwm, C), dw, tolFP32)
			reftest.CheckNMSE(t, "db", download(t, dbm, C), db, tolFP32)
			reftest.CheckNMSE(t, "dw accumulated", download(t, dwa, C), tlAdd(dw0, dw), tolFP32)
			reftest.CheckNMSE(t, "db accumulated", download(t, dba, C), tlAdd(db0, db), tolFP32)
			reftest.CheckNMSE(t, "db alone", download(t, dbOnly, C), db, tolFP32)
		})
	}
}

// In place: y aliases x; dx aliases dy.
func TestNormInPlace(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(13)
	const rows, C, eps = 5, 130, 1e-6
	x, w, b, dy := tlF32(reftest.Randn(rng, rows*C, 1)), tlF32(reftest.Randn(rng, C, 1)), tlF32(reftest.Randn(rng, C, 1)), tlF32(reftest.Randn(rng, rows*C, 1))
	xm, wm, bm, xm2, dym := upload(t, d, x, 1), upload(t, d, w, 0), upload(t, d, b, 3), upload(t, d, x, 2), upload(t, d, dy, 3)
	xs, rm, mm := upload(t, d, x, 0), zeros(t, d, rows, 0), zeros(t, d, rows, 0)
	r := d.NewRecorder(false)
	if err := RMSNorm(r, xm, Mem{}, xm, wm, rows, C, eps); err != nil {
		t.Fatal(err)
	}
	if err := LayerNorm(r, xm2, mm, rm, xm2, wm, bm, rows, C, eps); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	// LayerNorm overwrote its input: recompute the backward from a copy.
	r = d.NewRecorder(false)
	if err := LayerNormBackward(r, dym, dym, xs, wm, mm, rm, rows, C, false); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	y, mean, rstd := make([]float64, rows*C), make([]float64, rows), make([]float64, rows)
	RMSNormRef(y, nil, x, w, rows, C, eps)
	reftest.CheckNMSE(t, "rmsnorm in place", download(t, xm, rows*C), y, tolFP32)
	LayerNormRef(y, mean, rstd, x, w, b, rows, C, eps)
	reftest.CheckNMSE(t, "layernorm in place", download(t, xm2, rows*C), y, tolFP32)
	dx := make([]float64, rows*C)
	LayerNormBackwardRef(dx, dy, x, w, mean, rstd, rows, C)
	reftest.CheckNMSE(t, "layernorm backward in place", download(t, dym, rows*C), dx, tolFP32)
}

func TestNormErrors(t *testing.T) {
	d := gputest.Device(t)
	x, w := zeros(t, d, 3248*8, 0), zeros(t, d, 1000, 0)
	r := d.NewRecorder(false)
	err := RMSNorm(r, x, Mem{}, x, w, 8, 1024, 1e-6)
	if err == nil || !strings.Contains(err.Error(), "rmsnorm") || !strings.Contains(err.Error(), "8x1024") || !strings.Contains(err.Error(), "w needs 1024") {
		t.Errorf("short weight: got %v", err)
	}
	if err := LayerNorm(r, x, Mem{}, Mem{}, x, w, Mem{}, 2, 10, 1e-5); err == nil || !strings.Contains(err.Error(), "b is nil") {
		t.Errorf("nil bias: got %v", err)
	}
	if err := RMSNormBackward(r, x, x, x, w, Mem{}, 2, 10, false); err == nil || !strings.Contains(err.Error(), "rstd is nil") {
		t.Errorf("nil rstd: got %v", err)
	}
	if err := RMSNorm(r, x, Mem{}, x, w, 0, 10, 1e-6); err == nil {
		t.Errorf("zero rows accepted")
	}
	b, err := d.Alloc(64)
	if err != nil {
		t.Fatal(err)
	}
	b.Free()
	if err := RMSNorm(r, x, Mem{}, x, Whole(b), 2, 10, 1e-6); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("freed weight: got %v", err)
	}
	if r.Err() != nil {
		t.Errorf("recorder failed: %v", r.Err())
	}
}

// Inputs longer than one binding may hold are processed in row chunks.
func TestNormAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 64<<10)
	const C = 5
	rows := int(tlViewLimit(d)/C) + 7
	n := int64(rows) * C
	xb, err := d.Alloc(4 * (n + 1))
	if err != nil {
		t.Fatal(err)
	}
	defer xb.Free()
	x := Mem{Buf: xb, Off: 1}
	wv := []float64{1, 2, 4, 0.5, 0.25} // column sums stay exact in fp32
	w := upload(t, d, wv, 0)
	db := zeros(t, d, C, 0)
	rstd := zeros(t, d, rows, 1)
	r := d.NewRecorder(false)
	if err := Fill(r, x, n, 2); err != nil {
		t.Fatal(err)
	}
	if err := RMSNorm(r, x, rstd, x, w, rows, C, 0); err != nil {
		t.Fatal(err)
	}
	if err := LayerNormWeightGrad(r, Mem{}, db, x, Mem{}, Mem{}, Mem{}, rows, C, false); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	for _, row := range []int{0, rows/2 - 1, rows - 2, rows - 1} {
		reftest.CheckNMSE(t, fmt.Sprintf("row %d", row), download(t, x.At(int64(row)*C), C), wv, 0)
	}
	want := make([]float64, C)
	for j := range want {
		want[j] = float64(rows) * wv[j]
	}
	reftest.CheckNMSE(t, "column sums", download(t, db, C), want, 1e-12)
}

// tlBench runs the registered benchmark case op at shape (the same case as
// `shlpt-vk bench --op op --shape shape`), timing submit-and-wait.
func tlBench(b *testing.B, op, shape string) {
	d := gputest.Device(b)
	bo, err := LookupBench(op)
	if err != nil {
		b.Fatal(err)
	}
	c, err := bo.Make(d, shape)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Free()
	b.SetBytes(int64(c.Bytes))
	run := func() {
		r := d.NewRecorder(false)
		if err := c.Record(r); err != nil {
			b.Fatal(err)
		}
		if err := r.Run(); err != nil {
			b.Fatal(err)
		}
	}
	run() // warm-up: pipeline creation, first touch of memory
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
}

func BenchmarkRMSNorm(b *testing.B)   { tlBench(b, "rmsnorm", "3248x1024") }
func BenchmarkLayerNorm(b *testing.B) { tlBench(b, "layernorm", "8x1024") }
