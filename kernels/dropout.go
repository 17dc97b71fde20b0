package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

var (
	dropoutKernel4    = kernel("dropout", 8, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadOnly) // VEC4
	dropoutKernel1    = kernel("dropout", 8, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadOnly)
	dropoutTickKernel = kernel("dropout_tick", 1, gpu.ReadWrite)
)

// Dropout sets y[i] = x[i]/(1−p) where element i is kept and 0 where it is
// dropped, for i < n; each element is dropped with probability p. The mask
// is a function of (seed[0], site, i): seed is a one-element uint32 device
// buffer (advance it each step with DropoutTick), site distinguishes the
// dropout layers of a model. The backward pass is the same call on the
// output gradient (with the same seed and site), which gives the input
// gradient. With accumulate, y is added to instead of overwritten.
// x and y are (n,); they may be the same array only when accumulate is false.
// Arrays larger than one binding may hold are processed in chunks; the mask
// is the same as unchunked (it depends on the global element index).
func Dropout(r *gpu.Recorder, y, x Mem, n int64, p float32, seed Mem, site uint32, accumulate bool) error {
	const op = "dropout"
	if p < 0 || p >= 1 {
		return fmt.Errorf("%s: probability %v outside [0, 1)", op, p)
	}
	for _, c := range []struct {
		m    Mem
		name string
		n    int64
	}{{x, "x", n}, {y, "y", n}, {seed, "seed", 1}} {
		if err := c.m.check(op, c.name, c.n); err != nil {
			return err
		}
	}
	d := y.Buf.Device()
	acc := uint32(0)
	if accumulate {
		acc = 1
	}
	vec4 := x.Off%4 == 0 && y.Off%4 == 0
	k, texel, v := dropoutKernel1, int64(1), uint32(0)
	if vec4 {
		k, texel, v = dropoutKernel4, 4, 1
	}
	pl, err := pipeline(d, op, k, acc, v)
	if err != nil {
		return err
	}
	if n > math.MaxUint32 {
		return fmt.Errorf("%s: %d elements (the mask index is 32 bits)", op, n)
	}
	sb, so := span(d, seed, 1)
	// Chunks of a multiple of 16 elements keep the vec4 alignment of x and
	// y; each passes the global index of its first element.
	return chunks(n, dropoutChunk(d, texel), func(lo, hi int64) error {
		xb, xo := texelSpan(d, x.At(lo), hi-lo, texel)
		yib, yio := texelSpan(d, y.At(lo), hi-lo, texel)
		yb, yo := span(d, y.At(lo), hi-lo)
		if vec4 && (xo%4 != 0 || yio%4 != 0 || yo%4 != 0) {
			return fmt.Errorf("%s: internal: misaligned vec4 view (shifts %d, %d, %d)", op, xo, yio, yo)
		}
		return r.Dispatch(pl, grid1D(d, (hi-lo+3)/4), []uint32{uint32(hi - lo), f32(p), site, xo, yo, so, yio, uint32(lo)}, xb, yib, yb, sb)
	})
}

// dropoutChunk is the most elements one dispatch of Dropout covers: within
// one storage binding and one texel view of texel-element texels, with
// room for the alignment shifts, and a multiple of 16.
func dropoutChunk(d *gpu.Device, texel int64) int64 {
	lim := maxElems(d)
	if t := texel*int64(d.Info().MaxTexelBufferElements) - 64; t < lim {
		lim = t
	}
	return lim / 16 * 16
}

// DropoutTick advances the dropout seed (a one-element uint32 array) by one.
func DropoutTick(r *gpu.Recorder, seed Mem) error {
	const op = "dropout tick"
	if err := seed.check(op, "seed", 1); err != nil {
		return err
	}
	d := seed.Buf.Device()
	pl, err := pipeline(d, op, dropoutTickKernel)
	if err != nil {
		return err
	}
	sb, so := span(d, seed, 1)
	return r.Dispatch(pl, [3]uint32{1, 1, 1}, []uint32{so}, sb)
}

// dropKeep is shaders/dropout.glsl's decision in Go.
func dropKeep(seed, site, index uint32, p float32) bool {
	h := index*0x9E3779B1 ^ (site*0x85EBCA77 + seed*0xC2B2AE3D)
	h ^= h >> 16
	h *= 0x85EBCA6B
	h ^= h >> 13
	h *= 0xC2B2AE35
	h ^= h >> 16
	return float32(h>>8)*(1.0/16777216.0) >= p
}

// DropoutRef is the float64 reference of Dropout (without accumulate).
func DropoutRef(y, x []float64, p float32, seed, site uint32) {
	for i := range x {
		if dropKeep(seed, site, uint32(i), p) {
			y[i] = x[i] / (1 - float64(p))
		} else {
			y[i] = 0
		}
	}
}

func init() {
	// T5-large hidden states (8 × 406 tokens × 1024) and attention
	// probabilities (8 × 16 heads × 406 × 406, what the fused
	// softmax-dropout saves a pass over).
	registerBench(BenchOp{Name: "dropout", Shapes: []string{"3248x1024", "52864x406"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := rowsCols(shape)
			if err != nil {
				return nil, err
			}
			n := rows * C
			bufs, free, err := benchBuffers(d, n, n, 1)
			if err != nil {
				return nil, err
			}
			y, x, seed := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
			return &BenchCase{Op: "dropout", Shape: shape, Bytes: 8 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error { return Dropout(r, y, x, n, 0.1, seed, 1, false) }}, nil
		}})
}
