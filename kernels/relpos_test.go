package kernels

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// Buckets at the boundaries of T5's settings (32 buckets, max distance 128),
// from HuggingFace's definition with its float32 logarithm.
func TestRelPosBucketRef(t *testing.T) {
	// Distance → bucket for one direction of the bidirectional encoder
	// (16 buckets per direction, 8 exact) and for the causal decoder (32
	// buckets, 16 exact).
	enc := map[int]int{0: 0, 1: 1, 7: 7, 8: 8, 11: 8, 12: 9, 15: 9, 16: 10, 22: 10, 23: 11, 31: 11, 32: 12,
		45: 12, 46: 13, 63: 13, 64: 14, 90: 14, 91: 15, 127: 15, 128: 15, 129: 15, 1000: 15, 1 << 20: 15}
	dec := map[int]int{0: 0, 8: 8, 15: 15, 16: 16, 18: 16, 19: 17, 31: 21, 32: 21, 34: 21, 35: 22, 63: 26, 64: 26,
		66: 26, 67: 27, 112: 30, 113: 31, 127: 31, 128: 31, 129: 31, 5000: 31}
	for dist, want := range enc {
		if got := T5EncoderRelPos.Bucket(-dist); got != want {
			t.Errorf("encoder, key %d before the query: bucket %d, want %d", dist, got, want)
		}
		if dist > 0 {
			if got := T5EncoderRelPos.Bucket(dist); got != want+16 {
				t.Errorf("encoder, key %d after the query: bucket %d, want %d", dist, got, want+16)
			}
		}
	}
	for dist, want := range dec {
		if got := T5DecoderRelPos.Bucket(-dist); got != want {
			t.Errorf("decoder, key %d before the query: bucket %d, want %d", dist, got, want)
		}
		if got := T5DecoderRelPos.Bucket(dist); got != 0 {
			t.Errorf("decoder, key %d after the query: bucket %d, want 0", dist, got)
		}
	}
	// Where float32 and float64 arithmetic disagree, HF's float32 wins:
	// 32 buckets, max distance 72, distance 24: log(3)/log(9)·8 is 4 in
	// float32 (bucket 12) but 3.999... in float64 (bucket 11).
	if got := RelPosBucketRef(-24, true, 32, 72); got != 12 {
		t.Errorf("32 buckets, max distance 72, distance 24: bucket %d, want 12 (float32)", got)
	}
	if got := RelPosBucketRef(24, true, 32, 72); got != 28 {
		t.Errorf("32 buckets, max distance 72, distance +24: bucket %d, want 28 (float32)", got)
	}
}

// relposHF lists HuggingFace's buckets for relative positions −700 ... 700
// as (first relative position, bucket) runs, produced by
// T5Attention._relative_position_bucket under torch 1.13 on the CPU.
var relposHF = []struct {
	p    RelPos
	runs []int
}{
	{RelPos{8, 20, false}, []int{-700, 7, -13, 6, -8, 5, -5, 4, -3, 3, -2, 2, -1, 1, 0, 0}},
	{RelPos{9, 128, false}, []int{-700, 8, -63, 7, -31, 6, -15, 5, -7, 4, -3, 3, -2, 2, -1, 1, 0, 0}},
	{RelPos{16, 64, true}, []int{-700, 7, -31, 6, -15, 5, -7, 4, -3, 3, -2, 2, -1, 1, 0, 0, 1, 9, 2, 10, 3, 11, 4, 12, 8, 13, 16, 14, 32, 15}},
	{RelPos{19, 288, false}, []int{-700, 18, -203, 17, -143, 16, -101, 15, -71, 14, -50, 13, -35, 12, -25, 11, -17, 10, -12, 9, -8, 8, -7, 7, -6, 6, -5, 5, -4, 4, -3, 3, -2, 2, -1, 1, 0, 0}},
	{RelPos{24, 100, false}, []int{-700, 23, -83, 22, -70, 21, -58, 20, -49, 19, -41, 18, -34, 17, -29, 16, -24, 15, -20, 14, -17, 13, -14, 12, -11, 11, -10, 10, -9, 9, -8, 8, -7, 7, -6, 6, -5, 5, -4, 4, -3, 3, -2, 2, -1, 1, 0, 0}},
	{RelPos{32, 72, true}, []int{-700, 15, -54, 14, -41, 13, -31, 12, -23, 11, -18, 10, -13, 9, -10, 8, -7, 7, -6, 6, -5, 5, -4, 4, -3, 3, -2, 2, -1, 1, 0, 0, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 11, 25, 14, 26, 19, 27, 24, 28, 32, 29, 42, 30, 55, 31}},
	{RelPos{32, 128, true}, []int{-700, 15, -90, 14, -63, 13, -45, 12, -31, 11, -22, 10, -15, 9, -11, 8, -7, 7, -6, 6, -5, 5, -4, 4, -3, 3, -2, 2, -1, 1, 0, 0, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 12, 25, 16, 26, 23, 27, 32, 28, 46, 29, 64, 30, 91, 31}},
	{RelPos{32, 128, false}, []int{-700, 31, -112, 30, -98, 29, -86, 28, -76, 27, -66, 26, -58, 25, -51, 24, -45, 23, -39, 22, -34, 21, -30, 20, -26, 19, -23, 18, -20, 17, -18, 16, -15, 15, -14, 14, -13, 13, -12, 12, -11, 11, -10, 10, -9, 9, -8, 8, -7, 7, -6, 6, -5, 5, -4, 4, -3, 3, -2, 2, -1, 1, 0, 0}},
	{RelPos{64, 256, true}, []int{-700, 31, -215, 30, -181, 29, -152, 28, -127, 27, -107, 26, -90, 25, -76, 24, -63, 23, -53, 22, -45, 21, -38, 20, -31, 19, -26, 18, -22, 17, -19, 16, -15, 15, -14, 14, -13, 13, -12, 12, -11, 11, -10, 10, -9, 9, -8, 8, -7, 7, -6, 6, -5, 5, -4, 4, -3, 3, -2, 2, -1, 1, 0, 0, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47, 16, 48, 20, 49, 23, 50, 27, 51, 32, 52, 39, 53, 46, 54, 54, 55, 64, 56, 77, 57, 91, 58, 108, 59, 128, 60, 153, 61, 182, 62, 216, 63}},
}

func TestRelPosBucketHF(t *testing.T) {
	for _, c := range relposHF {
		for i := 0; i < len(c.runs); i += 2 {
			end := 701
			if i+2 < len(c.runs) {
				end = c.runs[i+2]
			}
			for rel := c.runs[i]; rel < end; rel++ {
				if got := c.p.Bucket(rel); got != c.runs[i+1] {
					t.Fatalf("%v: relative position %d: bucket %d, HF %d", c.p, rel, got, c.runs[i+1])
				}
			}
		}
	}
}

// The thresholds reproduce the reference bucket for every distance.
func TestRelPosThresholds(t *testing.T) {
	for _, p := range relposParams {
		nbh, me := p.half()
		thr := p.thresholds()
		for r := 0; r < 4*p.MaxDistance+50; r++ {
			b := r
			if r >= me {
				b = me
				for _, x := range thr {
					if uint32(r) >= x {
						b++
					}
				}
			}
			if want := RelPosBucketRef(-r, false, nbh, p.MaxDistance); b != want {
				t.Fatalf("%v: distance %d: thresholds give %d, reference %d", p, r, b, want)
			}
		}
	}
}

var relposParams = []RelPos{
	T5EncoderRelPos, T5DecoderRelPos,
	{NumBuckets: 32, MaxDistance: 72, Bidirectional: true},
	{NumBuckets: 16, MaxDistance: 64, Bidirectional: true},
	{NumBuckets: 8, MaxDistance: 20, Bidirectional: false},
	{NumBuckets: 4, MaxDistance: 3, Bidirectional: true},
	{NumBuckets: 64, MaxDistance: 256, Bidirectional: true},
	{NumBuckets: 19, MaxDistance: 288, Bidirectional: false},
}

func TestRelPosBias(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(51)
	type tc struct {
		H, Tq, Tk, qoff int
		p               RelPos
		pad             int64
	}
	cases := []tc{
		{2, 300, 300, 0, T5EncoderRelPos, 1}, // every distance up to 299 both ways
		{2, 300, 300, 0, T5DecoderRelPos, 3},
		{1, 1, 1, 0, T5EncoderRelPos, 0},
		{3, 7, 33, 0, T5EncoderRelPos, 2},
		{16, 1, 129, 128, T5DecoderRelPos, 1}, // decoding step 128 with a cache
		{4, 5, 200, 150, T5DecoderRelPos, 0},
		{2, 33, 7, 0, T5EncoderRelPos, 3},
	}
	for _, p := range relposParams[2:] {
		cases = append(cases, tc{3, 129, 100, 0, p, 1}, tc{1, 7, 1000, 3, p, 2})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/qoff=%d/%d-%d-%v/pad=%d", tlDims(c.H, c.Tq, c.Tk), c.qoff, c.p.NumBuckets, c.p.MaxDistance, c.p.Bidirectional, c.pad), func(t *testing.T) {
			nt, n := c.p.NumBuckets*c.H, c.H*c.Tq*c.Tk
			// table[b, h] = 1000·b + h: the bias spells out the bucket.
			table := make([]float64, nt)
			for b := 0; b < c.p.NumBuckets; b++ {
				for h := 0; h < c.H; h++ {
					table[b*c.H+h] = float64(1000*b + h)
				}
			}
			dbias, dt0 := tlF32(reftest.Randn(rng, n, 1)), tlF32(reftest.Randn(rng, nt, 1))
			tm, bm := upload(t, d, table, c.pad), zeros(t, d, n, c.pad+1)
			dbm, dtm, dta := upload(t, d, dbias, c.pad+2), zeros(t, d, nt, c.pad+3), upload(t, d, dt0, c.pad)
			r := d.NewRecorder(false)
			for _, err := range []error{
				RelPosBias(r, bm, tm, c.H, c.Tq, c.Tk, c.qoff, c.p),
				RelPosBiasBackward(r, dtm, dbm, c.H, c.Tq, c.Tk, c.qoff, c.p, false),
				RelPosBiasBackward(r, dta, dbm, c.H, c.Tq, c.Tk, c.qoff, c.p, true),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			want, dt := make([]float64, n), make([]float64, nt)
			RelPosBiasRef(want, table, c.H, c.Tq, c.Tk, c.qoff, c.p)
			got := download(t, bm, n)
			for i := range want {
				if got[i] != want[i] {
					h, q, k := i/(c.Tq*c.Tk), i/c.Tk%c.Tq, i%c.Tk
					t.Fatalf("bias[%d,%d,%d] (relative position %d) = %v, want %v", h, q, k, k-q-c.qoff, got[i], want[i])
				}
			}
			RelPosBiasBackwardRef(dt, dbias, c.H, c.Tq, c.Tk, c.qoff, c.p)
			reftest.CheckNMSE(t, "dtable", download(t, dtm, nt), dt, tolFP32)
			reftest.CheckNMSE(t, "dtable accumulated", download(t, dta, nt), tlAdd(dt0, dt), tolFP32)
		})
	}
}

func TestRelPosRefGradient(t *testing.T) {
	rng := newRNG(52)
	const H, Tq, Tk = 2, 5, 40
	p := RelPos{NumBuckets: 8, MaxDistance: 20, Bidirectional: true}
	table, g := reftest.Randn(rng, p.NumBuckets*H, 1), reftest.Randn(rng, H*Tq*Tk, 1)
	bias := make([]float64, H*Tq*Tk)
	dt := make([]float64, len(table))
	RelPosBiasBackwardRef(dt, g, H, Tq, Tk, 1, p)
	reftest.CheckNMSE(t, "dtable", dt, reftest.NumGrad(func(v []float64) float64 { RelPosBiasRef(bias, v, H, Tq, Tk, 1, p); return reftest.Dot(g, bias) }, table, 1e-3), 1e-16)
}

func TestRelPosErrors(t *testing.T) {
	d := gputest.Device(t)
	bias, table := zeros(t, d, 16*10*10, 0), zeros(t, d, 32*16, 0)
	r := d.NewRecorder(false)
	if err := RelPosBias(r, bias, table, 16, 10, 10, 0, RelPos{NumBuckets: 2, MaxDistance: 128, Bidirectional: true}); err == nil {
		t.Errorf("2 bidirectional buckets accepted")
	}
	if err := RelPosBias(r, bias, table, 16, 10, 10, 0, RelPos{NumBuckets: 128, MaxDistance: 128, Bidirectional: true}); err == nil || !strings.Contains(err.Error(), "thresholds") {
		t.Errorf("128 buckets: got %v", err)
	}
	if err := RelPosBias(r, bias, table, 16, 10, 11, 0, T5EncoderRelPos); err == nil || !strings.Contains(err.Error(), "16x10x11") {
		t.Errorf("short bias: got %v", err)
	}
	if err := RelPosBiasBackward(r, table, bias, 16, 10, 10, 0, RelPos{NumBuckets: 64, MaxDistance: 128, Bidirectional: true}, false); err == nil || !strings.Contains(err.Error(), "dtable needs 1024") {
		t.Errorf("short dtable: got %v", err)
	}
}

func BenchmarkRelPosBias(b *testing.B)         { tlBench(b, "relpos", "16x406x406") }
func BenchmarkRelPosBiasBackward(b *testing.B) { tlBench(b, "relpos-bwd", "16x406x406") }
