package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// T5's relative position buckets and the attention bias gathered from them,
// with its backward (a deterministic scatter-add into the bias table).
//
// The buckets follow HuggingFace's T5Attention._relative_position_bucket
// exactly, including its float32 logarithm: the host computes, for the
// logarithmic range, the smallest distance of each bucket with that float32
// arithmetic, and the shaders compare distances with these thresholds in
// integers. The device's own log never decides a bucket.

var (
	relposKernel    = kernel("relpos", 32, gpu.TexelR32F, gpu.ReadWrite)
	relposBwdKernel = kernel("relpos_bwd", 32, gpu.TexelR32F, gpu.TexelRGBA32F, gpu.ReadWrite)
)

// relposMaxThr is RELPOS_MAX_THR of shaders/relpos.glsl.
const relposMaxThr = 20

// relposBwdWG is the workgroup size of shaders/relpos_bwd.comp.
const relposBwdWG = 64

// RelPos are T5's relative attention parameters (HF config
// relative_attention_num_buckets and relative_attention_max_distance; the
// encoder is bidirectional, the decoder causal).
type RelPos struct {
	NumBuckets    int
	MaxDistance   int
	Bidirectional bool
}

// T5's settings: 32 buckets, max distance 128.
var (
	T5EncoderRelPos = RelPos{NumBuckets: 32, MaxDistance: 128, Bidirectional: true}
	T5DecoderRelPos = RelPos{NumBuckets: 32, MaxDistance: 128, Bidirectional: false}
)

func (p RelPos) String() string {
	dir := "causal"
	if p.Bidirectional {
		dir = "bidirectional"
	}
	return fmt.Sprintf("%d buckets, max distance %d, %s", p.NumBuckets, p.MaxDistance, dir)
}

// half returns the buckets per direction and the number of exact buckets.
func (p RelPos) half() (nbh, maxExact int) {
	nbh = p.NumBuckets
	if p.Bidirectional {
		nbh /= 2
	}
	return nbh, nbh / 2
}

func (p RelPos) check(op string) error {
	nbh, me := p.half()
	if me < 1 || p.MaxDistance <= me {
		return fmt.Errorf("%s: unsupported relative position parameters (%v): need at least 2 buckets per direction and a max distance above num_buckets/2 per direction", op, p)
	}
	if n := nbh - 1 - me; n > relposMaxThr {
		return fmt.Errorf("%s: %v needs %d bucket thresholds, the shaders hold %d", op, p, n, relposMaxThr)
	}
	return nil
}

// Bucket is RelPosBucketRef with p's parameters.
func (p RelPos) Bucket(rel int) int {
	return RelPosBucketRef(rel, p.Bidirectional, p.NumBuckets, p.MaxDistance)
}

// RelPosBucketRef returns the bucket of relative position rel = key −
// query, as HuggingFace's T5Attention._relative_position_bucket computes
// it: exact buckets for distances below max_exact = num_buckets/2 (per
// direction), then
//
//	max_exact + int(log(float32(r) / max_exact) / log(max_distance / max_exact) * (num_buckets − max_exact))
//
// in float32 (the second log in float64 rounded to float32, as a Python
// scalar in a float32 torch op), truncated, saturating at num_buckets − 1.
func RelPosBucketRef(rel int, bidirectional bool, numBuckets, maxDistance int) int {
	nb, bucket := numBuckets, 0
	var r int
	if bidirectional {
		nb /= 2
		if rel > 0 {
			bucket = nb
		}
		r = rel
		if r < 0 {
			r = -r
		}
	} else {
		r = 0
		if rel < 0 {
			r = -rel
		}
	}
	maxExact := nb / 2
	if r < maxExact {
		return bucket + r
	}
	l := float32(math.Log(float64(float32(r) / float32(maxExact))))
	l /= float32(math.Log(float64(maxDistance) / float64(maxExact)))
	l *= float32(nb - maxExact)
	large := maxExact + int(l)
	if large > nb-1 {
		large = nb - 1
	}
	return bucket + large
}

// thresholds returns, for the logarithmic buckets me+1 ... nbh−1 of one
// direction, the smallest distance that falls in each (the bucket is
// nondecreasing in the distance).
func (p RelPos) thresholds() []uint32 {
	nbh, me := p.half()
	f := func(r int) int { return RelPosBucketRef(-r, false, nbh, p.MaxDistance) }
	var thr []uint32
	for b := me + 1; b <= nbh-1; b++ {
		lo, hi := me, 1<<30 // f(lo) < b <= f(hi)
		if f(hi) < b {
			thr = append(thr, 1<<31-1) // never reached
			continue
		}
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if f(mid) >= b {
				hi = mid
			} else {
				lo = mid
			}
		}
		thr = append(thr, uint32(hi))
	}
	return thr
}

// relposPush is the push-constant tail shared by both shaders:
// nbh, me, bidir, nthr, then (after the shader's shifts) the thresholds.
func (p RelPos) push() (head [4]uint32, thr [relposMaxThr]uint32) {
	nbh, me := p.half()
	t := p.thresholds()
	copy(thr[:], t)
	return [4]uint32{uint32(nbh), uint32(me), tlBit(p.Bidirectional), uint32(len(t))}, thr
}

// RelPosBias gathers T5's relative position bias,
//
//	bias[h, q, k] = table[bucket(k − (q + queryOffset)), h],
//
// bias is (H, Tq, Tk), table is (NumBuckets, H) (the layout of HF's
// relative_attention_bias.weight). queryOffset is the position of query 0
// among the keys: 0 for a full sequence, t to compute the rows of queries
// t, t+1, ... when decoding with a cache.
func RelPosBias(r *gpu.Recorder, bias, table Mem, H, Tq, Tk, queryOffset int, p RelPos) error {
	const op = "relpos bias"
	if err := tlPositive(op, "H, Tq and Tk", H, Tq, Tk); err != nil {
		return err
	}
	if err := p.check(op); err != nil {
		return err
	}
	rows := int64(H) * int64(Tq)
	d, err := tlCheck(op, fmt.Sprintf("bias is %s, table is %s", tlDims(H, Tq, Tk), tlDims(p.NumBuckets, H)),
		tlOperand{"bias", bias, rows * int64(Tk)}, tlOperand{"table", table, int64(p.NumBuckets) * int64(H)})
	if err != nil {
		return err
	}
	if queryOffset < 0 || int64(queryOffset)+int64(Tq)+int64(Tk) >= 1<<30 {
		return fmt.Errorf("%s: query offset %d out of range (bias is %s)", op, queryOffset, tlDims(H, Tq, Tk))
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	pl, err := pipeline(d, op, relposKernel, wg)
	if err != nil {
		return err
	}
	head, thr := p.push()
	tb, ts := texelSpan(d, table, int64(p.NumBuckets)*int64(H), 1)
	return tlRowChunks(op, d, rows, int64(Tk), func(lo, hi int64) error {
		bb, bs := tlOut(d, bias.At(lo*int64(Tk)), (hi-lo)*int64(Tk))
		push := []uint32{uint32(hi - lo), uint32(lo), uint32(H), uint32(Tq), uint32(Tk), uint32(queryOffset)}
		push = append(push, head[:]...)
		push = append(push, ts, bs)
		push = append(push, thr[:]...)
		return r.Dispatch(pl, tlRowGrid(d, hi-lo, per), push, tb, bb)
	})
}

// RelPosBiasBackward computes the table gradient of RelPosBias,
//
//	dtable[b, h] = Σ_{q, k: bucket(k − (q + queryOffset)) = b} dbias[h, q, k],
//
// summed in a fixed order (deterministic), written to dtable, or added to
// it when accumulate. dbias is (H, Tq, Tk), dtable is (NumBuckets, H).
func RelPosBiasBackward(r *gpu.Recorder, dtable, dbias Mem, H, Tq, Tk, queryOffset int, p RelPos, accumulate bool) error {
	const op = "relpos bias backward"
	if err := tlPositive(op, "H, Tq and Tk", H, Tq, Tk); err != nil {
		return err
	}
	if err := p.check(op); err != nil {
		return err
	}
	nb := int64(H) * int64(Tq) * int64(Tk)
	nt := int64(p.NumBuckets) * int64(H)
	shape := fmt.Sprintf("dbias is %s, table is %s", tlDims(H, Tq, Tk), tlDims(p.NumBuckets, H))
	d, err := tlCheck(op, shape, tlOperand{"dtable", dtable, nt}, tlOperand{"dbias", dbias, nb})
	if err != nil {
		return err
	}
	// Each invocation loops over Tq + Tk relative positions and up to Tq
	// queries each; the whole of dbias is one binding.
	if queryOffset < 0 || int64(Tq)+int64(Tk) > tlMaxLoop || nb > tlViewLimit(d) {
		return fmt.Errorf("%s: too large or query offset %d out of range (%s)", op, queryOffset, shape)
	}
	pl, err := pipeline(d, op, relposBwdKernel, tlBit(accumulate))
	if err != nil {
		return err
	}
	head, thr := p.push()
	db, dbs := texelSpan(d, dbias, nb, 1)
	ob, os := tlView(d, dtable, nt)
	tb, ts := tlOut(d, dtable, nt)
	push := []uint32{uint32(p.NumBuckets), uint32(H), uint32(Tq), uint32(Tk), uint32(queryOffset)}
	push = append(push, head[:]...)
	push = append(push, dbs, os, ts)
	push = append(push, thr[:]...)
	g := (nt + relposBwdWG - 1) / relposBwdWG
	return r.Dispatch(pl, [3]uint32{uint32(g), 1, 1}, push, db, ob, tb)
}

// RelPosBiasRef is the float64 reference of RelPosBias.
func RelPosBiasRef(bias, table []float64, H, Tq, Tk, queryOffset int, p RelPos) {
	for h := 0; h < H; h++ {
		for q := 0; q < Tq; q++ {
			for k := 0; k < Tk; k++ {
				bias[(h*Tq+q)*Tk+k] = table[p.Bucket(k-(q+queryOffset))*H+h]
			}
		}
	}
}

// RelPosBiasBackwardRef sets dtable to the table gradient of RelPosBias.
func RelPosBiasBackwardRef(dtable, dbias []float64, H, Tq, Tk, queryOffset int, p RelPos) {
	for i := range dtable[:p.NumBuckets*H] {
		dtable[i] = 0
	}
	for h := 0; h < H; h++ {
		for q := 0; q < Tq; q++ {
			for k := 0; k < Tk; k++ {
				dtable[p.Bucket(k-(q+queryOffset))*H+h] += dbias[(h*Tq+q)*Tk+k]
			}
		}
	}
}

func init() {
	// T5-large encoder: 16 heads × 406 × 406.
	make3 := func(shape string) (int, int, int, error) {
		v, err := ParseShape(shape, 3)
		if err != nil {
			return 0, 0, 0, err
		}
		return v[0], v[1], v[2], nil
	}
	registerBench(BenchOp{Name: "relpos", Shapes: []string{"16x406x406"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			H, Tq, Tk, err := make3(shape)
			if err != nil {
				return nil, err
			}
			n := int64(H) * int64(Tq) * int64(Tk)
			bufs, free, err := benchBuffers(d, n, 32*int64(H))
			if err != nil {
				return nil, err
			}
			bias, table := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "relpos", Shape: shape, Bytes: 4 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error { return RelPosBias(r, bias, table, H, Tq, Tk, 0, T5EncoderRelPos) }}, nil
		}})
	registerBench(BenchOp{Name: "relpos-bwd", Shapes: []string{"16x406x406"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			H, Tq, Tk, err := make3(shape)
			if err != nil {
				return nil, err
			}
			n := int64(H) * int64(Tq) * int64(Tk)
			bufs, free, err := benchBuffers(d, n, 32*int64(H))
			if err != nil {
				return nil, err
			}
			dbias, dtable := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "relpos-bwd", Shape: shape, Bytes: 4 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error {
					return RelPosBiasBackward(r, dtable, dbias, H, Tq, Tk, 0, T5EncoderRelPos, false)
				}}, nil
		}})
}
