package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// finfoMin is torch.finfo(torch.float32).min, HuggingFace's mask value.
const finfoMin = -math.MaxFloat32

type softmaxCase struct {
	B, H, Tq, Tk  int
	bias, mask    bool
	causal        bool
	qoff          int
	pad           int64
	maskAllBatch0 bool // batch element 0 has every key padded
}

func (c softmaxCase) String() string {
	s := tlDims(c.B, c.H, c.Tq, c.Tk)
	if c.bias {
		s += "/bias"
	}
	if c.mask {
		s += "/mask"
	}
	if c.maskAllBatch0 {
		s += "-all"
	}
	if c.causal {
		s += fmt.Sprintf("/causal%+d", c.qoff)
	}
	return s + fmt.Sprintf("/pad=%d", c.pad)
}

var softmaxCases = []softmaxCase{
	{B: 1, H: 1, Tq: 1, Tk: 1},
	{B: 1, H: 1, Tq: 1, Tk: 1, bias: true, mask: true, causal: true, pad: 1},
	{B: 2, H: 3, Tq: 7, Tk: 7, pad: 1},
	{B: 2, H: 3, Tq: 7, Tk: 7, bias: true, mask: true, causal: true, pad: 3},
	{B: 1, H: 2, Tq: 33, Tk: 33, bias: true, pad: 2},
	{B: 3, H: 2, Tq: 5, Tk: 129, bias: true, mask: true, pad: 1, maskAllBatch0: true},
	{B: 2, H: 1, Tq: 3, Tk: 1000, mask: true, pad: 3},
	{B: 2, H: 2, Tq: 9, Tk: 12, causal: true, qoff: -3, pad: 1},                         // rows 0..2 fully masked
	{B: 2, H: 4, Tq: 1, Tk: 17, bias: true, mask: true, causal: true, qoff: 16, pad: 2}, // decoding step
	{B: 1, H: 2, Tq: 6, Tk: 10, bias: true, causal: true, qoff: 4},
	{B: 8, H: 2, Tq: 13, Tk: 406, bias: true, mask: true},
}

// softmaxInputs returns scores, bias and mask for c: large scores (to need
// the max subtraction) and finfo.min padding at the end of each batch
// element's keys.
func softmaxInputs(c softmaxCase, rng interface{ NormFloat64() float64 }) (x, bias, mask []float64) {
	n := c.B * c.H * c.Tq * c.Tk
	x = make([]float64, n)
	for i := range x {
		x[i] = rng.NormFloat64() * 4
		if i%11 == 3 {
			x[i] += 80
		}
	}
	x = tlF32(x)
	if c.bias {
		bias = make([]float64, c.H*c.Tq*c.Tk)
		for i := range bias {
			bias[i] = rng.NormFloat64() * 2
		}
		bias = tlF32(bias)
	}
	if c.mask {
		mask = make([]float64, c.B*c.Tk)
		for b := 0; b < c.B; b++ {
			valid := c.Tk - b*c.Tk/(2*c.B) // later batch elements are padded more
			if b == 0 && c.maskAllBatch0 {
				valid = 0
			}
			for j := valid; j < c.Tk; j++ {
				mask[b*c.Tk+j] = finfoMin
			}
		}
	}
	return x, bias, mask
}

func TestSoftmaxRefGradients(t *testing.T) {
	rng := newRNG(31)
	// Every row keeps at least one key: fully masked rows are constant.
	c := softmaxCase{B: 2, H: 2, Tq: 3, Tk: 5, bias: true, mask: true, causal: true, qoff: 1}
	x, bias, mask := softmaxInputs(c, rng)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	g := reftest.Randn(rng, len(x), 1)
	y := make([]float64, len(x))
	loss := func(x, bias []float64) float64 {
		SoftmaxRef(y, x, c.B, c.H, c.Tq, c.Tk, bias, mask, c.causal, c.qoff)
		return reftest.Dot(g, y)
	}
	loss(x, bias)
	dx := make([]float64, len(x))
	SoftmaxBackwardRef(dx, g, y, c.B*c.H*c.Tq, c.Tk)
	reftest.CheckNMSE(t, "dx", dx, reftest.NumGrad(func(v []float64) float64 { return loss(v, bias) }, x, 1e-5), 1e-16)
	db := make([]float64, len(bias))
	SoftmaxBiasBackwardRef(db, dx, c.B, len(bias))
	reftest.CheckNMSE(t, "dbias", db, reftest.NumGrad(func(v []float64) float64 { return loss(x, v) }, bias, 1e-5), 1e-16)
}

func TestSoftmax(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(32)
	for _, c := range softmaxCases {
		t.Run(c.String(), func(t *testing.T) {
			x, bias, mask := softmaxInputs(c, rng)
			rows, N := c.B*c.H*c.Tq, c.H*c.Tq*c.Tk
			n := rows * c.Tk
			dy, dx0, db0 := tlF32(reftest.Randn(rng, n, 1)), tlF32(reftest.Randn(rng, n, 1)), tlF32(reftest.Randn(rng, N, 1))
			xm, ym := upload(t, d, x, c.pad), zeros(t, d, n, c.pad+1)
			xi := upload(t, d, x, c.pad+2)
			o := SoftmaxOpts{Causal: c.causal, QueryOffset: c.qoff}
			if c.bias {
				o.Bias = upload(t, d, bias, c.pad+3)
			}
			if c.mask {
				o.Mask = upload(t, d, mask, 2*c.pad)
			}
			dym, dxm, dxa := upload(t, d, dy, c.pad+1), zeros(t, d, n, c.pad), upload(t, d, dx0, c.pad+3)
			dbm, dba := zeros(t, d, N, c.pad+2), upload(t, d, db0, c.pad)
			// Attention dropout fused into the same passes: forward into
			// y2 and yd, backward from dy into dxd and (accumulating) dxda.
			seed, err := d.Alloc(8)
			if err != nil {
				t.Fatal(err)
			}
			defer seed.Free()
			if err := gpu.WriteSlice(seed, 0, []uint32{0, 17}); err != nil {
				t.Fatal(err)
			}
			dm := DropoutMask{P: 0.3, Seed: Mem{Buf: seed, Off: 1}, Site: 5}
			od := o
			od.Dropout, od.DropoutOut = dm, zeros(t, d, n, c.pad+2)
			y2, dxd, dxda := zeros(t, d, n, c.pad), zeros(t, d, n, c.pad+1), upload(t, d, dx0, c.pad+2)
			r := d.NewRecorder(false)
			for _, err := range []error{
				Softmax(r, y2, xm, c.B, c.H, c.Tq, c.Tk, od),
				SoftmaxDropoutBackward(r, dxd, dym, y2, rows, c.Tk, dm, false),
				SoftmaxDropoutBackward(r, dxda, dym, y2, rows, c.Tk, dm, true),
				Softmax(r, ym, xm, c.B, c.H, c.Tq, c.Tk, o),
				Softmax(r, xi, xi, c.B, c.H, c.Tq, c.Tk, o), // in place
				SoftmaxBackward(r, dxm, dym, ym, rows, c.Tk, false),
				SoftmaxBackward(r, dxa, dym, ym, rows, c.Tk, true),
				SoftmaxBiasBackward(r, dbm, dxm, c.B, c.H, c.Tq, c.Tk, false),
				SoftmaxBiasBackward(r, dba, dxm, c.B, c.H, c.Tq, c.Tk, true),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			y := make([]float64, n)
			SoftmaxRef(y, x, c.B, c.H, c.Tq, c.Tk, bias, mask, c.causal, c.qoff)
			gotY := download(t, ym, n)
			reftest.CheckNMSE(t, "y", gotY, y, tolFP32)
			reftest.CheckNMSE(t, "y in place", download(t, xi, n), y, tolFP32)
			// Masked keys are exactly 0, rows sum to 1.
			for row := 0; row < rows; row++ {
				s := 0.0
				for j := 0; j < c.Tk; j++ {
					if y[row*c.Tk+j] == 0 && gotY[row*c.Tk+j] != 0 {
						t.Fatalf("row %d key %d: masked key got %v", row, j, gotY[row*c.Tk+j])
					}
					s += gotY[row*c.Tk+j]
				}
				if math.Abs(s-1) > float64(c.Tk)*tolScaled {
					t.Fatalf("row %d sums to %v", row, s)
				}
			}
			// The backward is checked against the reference applied to the
			// device's y, so that it measures the backward alone.
			dx, db := make([]float64, n), make([]float64, N)
			SoftmaxBackwardRef(dx, dy, gotY, rows, c.Tk)
			reftest.CheckNMSE(t, "dx", download(t, dxm, n), dx, tolFP32)
			reftest.CheckNMSE(t, "dx accumulated", download(t, dxa, n), tlAdd(dx0, dx), tolFP32)
			// Fused dropout: y unchanged, yd = dropout(y) with Dropout's
			// mask over the whole tensor, and dx from the masked dy.
			gotY2 := download(t, y2, n)
			reftest.CheckNMSE(t, "y with dropout", gotY2, y, tolFP32)
			yd, dyd, dxdWant := make([]float64, n), make([]float64, n), make([]float64, n)
			DropoutRef(yd, gotY2, dm.P, 17, dm.Site)
			reftest.CheckNMSE(t, "dropout(y)", download(t, od.DropoutOut, n), yd, tolFP32)
			DropoutRef(dyd, dy, dm.P, 17, dm.Site)
			SoftmaxBackwardRef(dxdWant, dyd, gotY2, rows, c.Tk)
			reftest.CheckNMSE(t, "dx through dropout", download(t, dxd, n), dxdWant, tolFP32)
			reftest.CheckNMSE(t, "dx through dropout accumulated", download(t, dxda, n), tlAdd(dx0, dxdWant), tolFP32)
			SoftmaxBiasBackwardRef(db, download(t, dxm, n), c.B, N)
			reftest.CheckNMSE(t, "dbias", download(t, dbm, N), db, tolFP32)
			reftest.CheckNMSE(t, "dbias accumulated", download(t, dba, N), tlAdd(db0, db), tolFP32)
		})
	}
}

// HuggingFace semantics: a row whose keys are all masked with finfo.min is
// uniform; -inf in the scores masks too; mild masks (-1e4) are additive.
func TestSoftmaxMaskSemantics(t *testing.T) {
	d := gputest.Device(t)
	const Tk = 6
	x := []float64{1, 2, 3, 4, 5, 6, math.Inf(-1), 0, 1, math.Inf(-1), 2, 3}
	mask := []float64{finfoMin, finfoMin, finfoMin, finfoMin, finfoMin, finfoMin, 0, -1e4, 0, 0, finfoMin, 0}
	xm, mm, ym := upload(t, d, x, 1), upload(t, d, mask, 2), zeros(t, d, 2*Tk, 3)
	r := d.NewRecorder(false)
	if err := Softmax(r, ym, xm, 2, 1, 1, Tk, SoftmaxOpts{Mask: mm}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	got := download(t, ym, 2*Tk)
	uniform := make([]float64, Tk)
	for j := range uniform {
		uniform[j] = 1.0 / Tk
	}
	reftest.CheckScaled(t, "fully masked row", got[:Tk], uniform, tolScaled)
	e := []float64{0, math.Exp(-1e4), math.Exp(1), 0, 0, math.Exp(3)}
	s := e[0] + e[1] + e[2] + e[3] + e[4] + e[5]
	want := make([]float64, Tk)
	for j := range want {
		want[j] = e[j] / s
	}
	reftest.CheckScaled(t, "partly masked row", got[Tk:], want, tolScaled)
	for _, j := range []int{0, 3, 4} { // -inf and finfo.min: exactly 0
		if got[Tk+j] != 0 {
			t.Errorf("partly masked row: masked key %d got %v, want 0", j, got[Tk+j])
		}
	}
}

func TestSoftmaxErrors(t *testing.T) {
	d := gputest.Device(t)
	x := zeros(t, d, 2*16*10*10, 0)
	bias := zeros(t, d, 16*10*9, 0)
	r := d.NewRecorder(false)
	err := Softmax(r, x, x, 2, 16, 10, 10, SoftmaxOpts{Bias: bias})
	if err == nil || !strings.Contains(err.Error(), "softmax: bias needs 1600") || !strings.Contains(err.Error(), "2x16x10x10") {
		t.Errorf("short bias: got %v", err)
	}
	if err := Softmax(r, x, x, 2, 16, 10, 0, SoftmaxOpts{}); err == nil {
		t.Errorf("Tk = 0 accepted")
	}
	if err := SoftmaxBiasBackward(r, bias, x, 2, 16, 10, 10, false); err == nil || !strings.Contains(err.Error(), "dbias") {
		t.Errorf("short dbias: got %v", err)
	}
	seed := zeros(t, d, 1, 0)
	if err := Softmax(r, x, x, 2, 16, 10, 10, SoftmaxOpts{Dropout: DropoutMask{P: 1, Seed: seed}, DropoutOut: bias}); err == nil || !strings.Contains(err.Error(), "dropout probability 1") {
		t.Errorf("dropout probability 1: got %v", err)
	}
	if err := Softmax(r, x, x, 2, 16, 10, 10, SoftmaxOpts{Dropout: DropoutMask{P: 0.1, Seed: seed}, DropoutOut: bias}); err == nil || !strings.Contains(err.Error(), "dropout output needs 3200") {
		t.Errorf("short dropout output: got %v", err)
	}
	if err := SoftmaxDropoutBackward(r, x, x, x, 20, 160, DropoutMask{P: 0.1}, false); err == nil || !strings.Contains(err.Error(), "no dropout seed") {
		t.Errorf("no seed: got %v", err)
	}
}

func BenchmarkSoftmax(b *testing.B)         { tlBench(b, "softmax", "8x16x406x406") }
func BenchmarkSoftmaxBackward(b *testing.B) { tlBench(b, "softmax-bwd", "8x16x406x406") }
func BenchmarkSoftmaxDropout(b *testing.B)  { tlBench(b, "softmax-dropout", "8x16x406x406") }
func BenchmarkSoftmaxDropoutBackward(b *testing.B) {
	tlBench(b, "softmax-dropout-bwd", "8x16x406x406")
}
func BenchmarkDropout(b *testing.B) { tlBench(b, "dropout", "52864x406") }

// Scores larger than one binding may hold are processed in row chunks (the
// batch element of a row, and so its mask row, found across chunks); the
// bias gradient over them in batch chunks.
func TestSoftmaxAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 256<<10)
	const B, H, Tk = 3, 1, 1000
	lim := tlViewLimit(d)
	Tq := int(lim/(B*H*Tk)) + 3
	n := int64(B) * H * int64(Tq) * Tk
	N := int64(H) * int64(Tq) * Tk
	xb, err := d.Alloc(4 * (n + 1))
	if err != nil {
		t.Fatal(err)
	}
	defer xb.Free()
	bb, err := d.Alloc(4 * N)
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Free()
	x, bias := Mem{Buf: xb, Off: 1}, Whole(bb)
	mask := make([]float64, B*Tk)
	for j := Tk / 2; j < Tk; j++ {
		mask[Tk+j] = finfoMin // batch 1: second half padded
	}
	mask[3*Tk-1] = finfoMin // batch 2: last key padded
	mm := upload(t, d, mask, 1)
	r := d.NewRecorder(false)
	// x[b, 0, i, j] = j/100 + b, bias[0, i, j] = −j/400: rows differ by batch
	// element only (and the mask).
	if err := Fill(r, x, n, 0); err != nil {
		t.Fatal(err)
	}
	if err := Fill(r, bias, N, 0); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	rowX := func(b int) []float64 {
		v := make([]float64, Tk)
		for j := range v {
			v[j] = float64(j)/100 + float64(b)
		}
		return v
	}
	rowB := make([]float64, Tk)
	for j := range rowB {
		rowB[j] = -float64(j) / 400
	}
	// Only the rows checked below need their values.
	checkRows := func(b int) []int { return []int{0, 1, Tq / 2, Tq - 2, Tq - 1} }
	for b := 0; b < B; b++ {
		for _, i := range checkRows(b) {
			if err := gpu.WriteSlice(xb, 1+int64((b*Tq+i)*Tk), reftest.F32s(rowX(b))); err != nil {
				t.Fatal(err)
			}
			if err := gpu.WriteSlice(bb, int64(i*Tk), reftest.F32s(rowB)); err != nil {
				t.Fatal(err)
			}
		}
	}
	db := zeros(t, d, int(N), 0)
	r = d.NewRecorder(false)
	if err := Softmax(r, x, x, B, H, Tq, Tk, SoftmaxOpts{Bias: bias, Mask: mm}); err != nil {
		t.Fatal(err)
	}
	if err := SoftmaxBiasBackward(r, db, x, B, H, Tq, Tk, false); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	uniform := make([]float64, Tk)
	for j := range uniform {
		uniform[j] = 1.0 / Tk
	}
	for _, i := range checkRows(0) {
		sum := make([]float64, Tk)
		for b := 0; b < B; b++ {
			want := make([]float64, Tk)
			SoftmaxRef(want, rowX(b), 1, 1, 1, Tk, rowB, mask[b*Tk:(b+1)*Tk], false, 0)
			got := download(t, x.At(int64((b*Tq+i)*Tk)), Tk)
			reftest.CheckNMSE(t, fmt.Sprintf("batch %d row %d", b, i), got, want, tolFP32)
			for j := range sum {
				sum[j] += got[j]
			}
		}
		reftest.CheckNMSE(t, fmt.Sprintf("bias gradient row %d", i), download(t, db.At(int64(i*Tk)), Tk), sum, tolFP32)
	}
	// Rows left at zero scores: uniform over the unmasked keys of batch 0.
	reftest.CheckNMSE(t, "zero row", download(t, x.At(int64(5*Tk)), Tk), uniform, tolFP32)
}

// A row's probabilities depend on its own keys only: the same scores give
// the same bits at another row of a larger batch, at another buffer
// offset, and with masked keys appended (a longer padded batch, a longer
// decoding cache). Batched serving relies on this to give exactly the
// results of a smaller evaluation batch.
func TestSoftmaxRowInvariance(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(33)
	for _, c := range []struct {
		name           string
		H, Tq, Tk, Tk2 int
		causal         bool
		qoff           int
	}{
		{"encoder", 2, 7, 7, 13, false, 0},
		{"decoder", 2, 5, 5, 12, true, 0},
		{"decoding step", 2, 1, 3, 9, true, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The row under test: batch element 0 of a batch of one.
			x1 := tlF32(reftest.Randn(rng, c.H*c.Tq*c.Tk, 4))
			b1 := tlF32(reftest.Randn(rng, c.H*c.Tq*c.Tk, 2))
			m1 := make([]float64, c.Tk)
			// The same row as batch element 1 of 3, every key row widened to
			// Tk2 keys whose extra keys are masked.
			const B2, at = 3, 1
			x2 := tlF32(reftest.Randn(rng, B2*c.H*c.Tq*c.Tk2, 4))
			b2 := tlF32(reftest.Randn(rng, c.H*c.Tq*c.Tk2, 2))
			m2 := make([]float64, B2*c.Tk2)
			for r := 0; r < c.H*c.Tq; r++ {
				copy(x2[(at*c.H*c.Tq+r)*c.Tk2:], x1[r*c.Tk:(r+1)*c.Tk])
				copy(b2[r*c.Tk2:], b1[r*c.Tk:(r+1)*c.Tk])
			}
			for j := c.Tk; j < c.Tk2; j++ {
				m2[at*c.Tk2+j] = finfoMin
			}
			n1, n2 := c.H*c.Tq*c.Tk, B2*c.H*c.Tq*c.Tk2
			for _, pad := range []int64{0, 1, 2, 3} {
				y1, y2 := zeros(t, d, n1, 0), zeros(t, d, n2, pad)
				r := d.NewRecorder(false)
				for _, err := range []error{
					Softmax(r, y1, upload(t, d, x1, 0), 1, c.H, c.Tq, c.Tk, SoftmaxOpts{Bias: upload(t, d, b1, 0), Mask: upload(t, d, m1, 0), Causal: c.causal, QueryOffset: c.qoff}),
					Softmax(r, y2, upload(t, d, x2, pad+1), B2, c.H, c.Tq, c.Tk2, SoftmaxOpts{Bias: upload(t, d, b2, pad+2), Mask: upload(t, d, m2, pad), Causal: c.causal, QueryOffset: c.qoff}),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				run(t, r)
				got1, got2 := download(t, y1, n1), download(t, y2, n2)
				for row := 0; row < c.H*c.Tq; row++ {
					for j := 0; j < c.Tk2; j++ {
						want := 0.0
						if j < c.Tk {
							want = got1[row*c.Tk+j]
						}
						if g := got2[(at*c.H*c.Tq+row)*c.Tk2+j]; g != want {
							t.Fatalf("offset %d: row %d key %d is %v in the larger batch, %v alone", pad, row, j, g, want)
						}
					}
				}
			}
		})
	}
}
