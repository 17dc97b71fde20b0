package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Softmax over the last axis of attention scores, with T5's relative
// position bias, a padding mask and causal masking folded in; its backward;
// and the bias gradient (the sum of the score gradients over the batch).

var (
	softmaxKernel        = kernel("softmax", 14, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadOnly)
	softmaxBwdKernel     = kernel("softmax_bwd", 10, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadOnly)
	softmaxBiasBwdKernel = kernel("softmax_bias_bwd", 6, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite)
)

// SoftmaxMasked is the score at or below which a key counts as masked:
// HuggingFace's torch.finfo(float32).min masks and -inf both are.
const SoftmaxMasked = -1e30

// SoftmaxOpts are the optional terms of Softmax. The zero value is a plain
// softmax.
type SoftmaxOpts struct {
	// Bias (H, Tq, Tk) is added to the scores of every batch element: T5's
	// relative position bias.
	Bias Mem
	// Mask (B, Tk) is added to the scores of every head and query: 0 for
	// real keys, a large negative number (HF: finfo.min) for padding.
	Mask Mem
	// Causal masks key j for query i when j > i + QueryOffset.
	Causal bool
	// QueryOffset is the position of query 0 among the keys, for causal
	// masking when decoding with a cache (Tq = 1, QueryOffset = Tk − 1).
	QueryOffset int
	// Dropout, when its Seed is set, also writes dropout(y) to DropoutOut
	// (B, H, Tq, Tk) in the same pass, the mask as Dropout's over the whole
	// (B, H, Tq, Tk) tensor: attention dropout without another pass over
	// the probabilities.
	Dropout    DropoutMask
	DropoutOut Mem
}

// DropoutMask is the mask of Dropout over a whole tensor: element e is kept,
// and scaled by 1/(1 − P), when the hash of (Seed[0], Site, e) says so.
// Seed is a one-element uint32 array on the device.
type DropoutMask struct {
	P    float32
	Seed Mem
	Site uint32
}

func (m DropoutMask) on() bool { return m.Seed.Buf != nil }

// check validates m for op; n is the size of the masked tensor.
func (m DropoutMask) check(op string, n int64) error {
	if m.P < 0 || m.P >= 1 {
		return fmt.Errorf("%s: dropout probability %v outside [0, 1)", op, m.P)
	}
	if n >= 1<<32 {
		return fmt.Errorf("%s: dropout over %d elements (the mask index is 32 bits)", op, n)
	}
	return m.Seed.check(op, "seed", 1)
}

// Softmax computes, for each row (b, h, i) of the scores,
//
//	s[j] = x[b,h,i,j] + Bias[h,i,j] + Mask[b,j]
//	y[b,h,i,j] = exp(s[j] − max s) / Σ_j' exp(s[j'] − max s)
//
// over the keys j that are not masked (causal masking, or s[j] ≤
// SoftmaxMasked); masked keys get 0. A row whose keys are all masked gets
// the uniform distribution 1/Tk, as HuggingFace's finfo.min masks give. The
// result is numerically stable (max-subtracted).
// y and x are (B, H, Tq, Tk); y may alias x (in place). A plain softmax over
// the last axis of a (rows, T) array is Softmax(r, y, x, rows, 1, 1, T,
// SoftmaxOpts{}).
func Softmax(r *gpu.Recorder, y, x Mem, B, H, Tq, Tk int, o SoftmaxOpts) error {
	const op = "softmax"
	if err := tlPositive(op, "B, H, Tq and Tk", B, H, Tq, Tk); err != nil {
		return err
	}
	rows := int64(B) * int64(H) * int64(Tq)
	n := rows * int64(Tk)
	shape := fmt.Sprintf("x is %s", tlDims(B, H, Tq, Tk))
	ops := []tlOperand{{"y", y, n}, {"x", x, n}}
	hasBias, hasMask := o.Bias.Buf != nil, o.Mask.Buf != nil
	nb, nm := int64(H)*int64(Tq)*int64(Tk), int64(B)*int64(Tk)
	if hasBias {
		ops = append(ops, tlOperand{"bias", o.Bias, nb})
	}
	if hasMask {
		ops = append(ops, tlOperand{"mask", o.Mask, nm})
	}
	drop := o.Dropout.on()
	if drop {
		if err := o.Dropout.check(op, n); err != nil {
			return err
		}
		ops = append(ops, tlOperand{"dropout output", o.DropoutOut, n})
	}
	d, err := tlCheck(op, shape, ops...)
	if err != nil {
		return err
	}
	if lim := tlViewLimit(d); nb > lim && hasBias {
		return fmt.Errorf("%s: bias of %d elements exceeds one binding on %s (%s)", op, nb, d, shape)
	}
	if rows >= 1<<32 || int64(Tk)*int64(H)*int64(Tq) >= 1<<31 {
		return fmt.Errorf("%s: too large (%s)", op, shape)
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, softmaxKernel, wg, tlBit(hasBias), tlBit(hasMask), tlBit(o.Causal), tlBit(drop))
	if err != nil {
		return err
	}
	return tlRowChunks(op, d, rows, int64(Tk), func(lo, hi int64) error {
		m := (hi - lo) * int64(Tk)
		xb, xs := tlView(d, x.At(lo*int64(Tk)), m)
		yb, ys := tlOut(d, y.At(lo*int64(Tk)), m)
		db, ds, sb, ss := yb, ys, yb, uint32(0) // unused without dropout
		if drop {
			db, ds = tlOut(d, o.DropoutOut.At(lo*int64(Tk)), m)
			sb, ss = span(d, o.Dropout.Seed, 1)
		}
		bb, bs, mb, ms := xb, uint32(0), xb, uint32(0) // unused: x in their place
		if hasBias {
			bb, bs = tlView(d, o.Bias, nb)
		}
		if hasMask {
			// Up to the last batch element of this chunk's rows.
			b1 := (hi-1)/(int64(H)*int64(Tq)) + 1
			mb, ms = tlView(d, o.Mask, b1*int64(Tk))
		}
		return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
			[]uint32{uint32(hi - lo), uint32(lo), uint32(Tk), uint32(H * Tq), uint32(Tq), uint32(int32(o.QueryOffset)), xs, bs, ms, ys,
				f32(o.Dropout.P), o.Dropout.Site, ss, ds},
			xb, bb, mb, yb, db, sb)
	})
}

// SoftmaxBackward computes the input gradient of a softmax over the last
// axis from its output,
//
//	dx = y ⊙ (dy − Σ_j dy ⊙ y),
//
// written to dx, or added to it when accumulate. dx, dy and y are (rows, T),
// rows = B·H·Tq for attention. The additive bias and mask of Softmax have
// the same gradient as x (the mask is constant; see SoftmaxBiasBackward for
// the bias). dx may alias dy when not accumulating.
func SoftmaxBackward(r *gpu.Recorder, dx, dy, y Mem, rows, T int, accumulate bool) error {
	return softmaxBackward(r, "softmax backward", dx, dy, y, rows, T, DropoutMask{}, accumulate)
}

// SoftmaxDropoutBackward is SoftmaxBackward when dy is the gradient of
// dropout(y) with mask (Softmax with Dropout): dy is multiplied by the mask
// first, in the same pass.
func SoftmaxDropoutBackward(r *gpu.Recorder, dx, dy, y Mem, rows, T int, mask DropoutMask, accumulate bool) error {
	const op = "softmax dropout backward"
	if !mask.on() {
		return fmt.Errorf("%s: no dropout seed", op)
	}
	if err := mask.check(op, int64(rows)*int64(T)); err != nil {
		return err
	}
	return softmaxBackward(r, op, dx, dy, y, rows, T, mask, accumulate)
}

func softmaxBackward(r *gpu.Recorder, op string, dx, dy, y Mem, rows, T int, mask DropoutMask, accumulate bool) error {
	if err := tlPositive(op, "rows and T", rows, T); err != nil {
		return err
	}
	n := int64(rows) * int64(T)
	d, err := tlCheck(op, fmt.Sprintf("y is %s", tlDims(rows, T)), tlOperand{"dx", dx, n}, tlOperand{"dy", dy, n}, tlOperand{"y", y, n})
	if err != nil {
		return err
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	drop := mask.on()
	p, err := pipeline(d, op, softmaxBwdKernel, wg, tlBit(accumulate), tlBit(drop))
	if err != nil {
		return err
	}
	return tlRowChunks(op, d, int64(rows), int64(T), func(lo, hi int64) error {
		m := (hi - lo) * int64(T)
		yb, ys := tlView(d, y.At(lo*int64(T)), m)
		dyb, dys := tlView(d, dy.At(lo*int64(T)), m)
		ob, os := tlView(d, dx.At(lo*int64(T)), m)
		dxb, dxs := tlOut(d, dx.At(lo*int64(T)), m)
		sb, ss := dxb, uint32(0) // unused without dropout
		if drop {
			sb, ss = span(d, mask.Seed, 1)
		}
		return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
			[]uint32{uint32(hi - lo), uint32(T), ys, dys, os, dxs, uint32(lo), f32(mask.P), mask.Site, ss},
			yb, dyb, ob, dxb, sb)
	})
}

// SoftmaxBiasBackward computes the gradient of the bias that Softmax
// broadcasts over the batch, the sum over b of the score gradients,
//
//	dbias[h,i,j] = Σ_b dx[b,h,i,j]   (in order of b: deterministic),
//
// written to dbias, or added to it when accumulate. dx is (B, H, Tq, Tk) as
// given by SoftmaxBackward, dbias is (H, Tq, Tk).
func SoftmaxBiasBackward(r *gpu.Recorder, dbias, dx Mem, B, H, Tq, Tk int, accumulate bool) error {
	const op = "softmax bias backward"
	if err := tlPositive(op, "B, H, Tq and Tk", B, H, Tq, Tk); err != nil {
		return err
	}
	N := int64(H) * int64(Tq) * int64(Tk)
	d, err := tlCheck(op, fmt.Sprintf("dx is %s", tlDims(B, H, Tq, Tk)), tlOperand{"dbias", dbias, N}, tlOperand{"dx", dx, int64(B) * N})
	if err != nil {
		return err
	}
	if N >= 1<<31 {
		return fmt.Errorf("%s: too large (dx is %s)", op, tlDims(B, H, Tq, Tk))
	}
	lim := actChunk(d)
	// Batch chunks whose dx view fits one binding (and whose loop stays
	// short); a single batch element is split along N if it must be.
	bPer, nPer := lim/N, N
	if bPer < 1 {
		bPer, nPer = 1, lim
	}
	if bPer > tlMaxLoop {
		bPer = tlMaxLoop
	}
	return chunks(int64(B), bPer, func(b0, b1 int64) error {
		acc := accumulate || b0 > 0
		p, err := pipeline(d, op, softmaxBiasBwdKernel, tlBit(acc))
		if err != nil {
			return err
		}
		return chunks(N, nPer, func(lo, hi int64) error {
			m := hi - lo
			xb, xs := tlView(d, dx.At(b0*N+lo), (b1-b0-1)*N+m)
			ob, os := tlView(d, dbias.At(lo), m)
			db, dbs := tlOut(d, dbias.At(lo), m)
			return r.Dispatch(p, grid1D(d, tlGroups4(dbs, m)), []uint32{uint32(m), uint32(N), uint32(b1 - b0), xs, os, dbs}, xb, ob, db)
		})
	})
}

// SoftmaxRef is the float64 reference of Softmax; bias and mask may be nil.
func SoftmaxRef(y, x []float64, B, H, Tq, Tk int, bias, mask []float64, causal bool, queryOffset int) {
	s := make([]float64, Tk)
	keep := make([]bool, Tk)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < Tq; i++ {
				row := ((b*H+h)*Tq + i) * Tk
				m, any := math.Inf(-1), false
				for j := 0; j < Tk; j++ {
					s[j] = x[row+j]
					if bias != nil {
						s[j] += bias[(h*Tq+i)*Tk+j]
					}
					if mask != nil {
						s[j] += mask[b*Tk+j]
					}
					keep[j] = s[j] > SoftmaxMasked && !(causal && j > i+queryOffset)
					if keep[j] {
						m, any = math.Max(m, s[j]), true
					}
				}
				if !any {
					for j := 0; j < Tk; j++ {
						y[row+j] = 1 / float64(Tk)
					}
					continue
				}
				sum := 0.0
				for j := 0; j < Tk; j++ {
					if keep[j] {
						sum += math.Exp(s[j] - m)
					}
				}
				for j := 0; j < Tk; j++ {
					y[row+j] = 0
					if keep[j] {
						y[row+j] = math.Exp(s[j]-m) / sum
					}
				}
			}
		}
	}
}

// SoftmaxBackwardRef sets dx = y ⊙ (dy − Σ dy ⊙ y) per row of length T.
func SoftmaxBackwardRef(dx, dy, y []float64, rows, T int) {
	for i := 0; i < rows; i++ {
		o := i * T
		s := 0.0
		for j := 0; j < T; j++ {
			s += dy[o+j] * y[o+j]
		}
		for j := 0; j < T; j++ {
			dx[o+j] = y[o+j] * (dy[o+j] - s)
		}
	}
}

// SoftmaxBiasBackwardRef sets dbias = Σ_b dx[b].
func SoftmaxBiasBackwardRef(dbias, dx []float64, B, N int) {
	for e := 0; e < N; e++ {
		s := 0.0
		for b := 0; b < B; b++ {
			s += dx[b*N+e]
		}
		dbias[e] = s
	}
}

// tlShape4 parses "BxHxTqxTk".
func tlShape4(shape string) (B, H, Tq, Tk int, err error) {
	v, err := ParseShape(shape, 4)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	return v[0], v[1], v[2], v[3], nil
}

func init() {
	// T5-large encoder self-attention: 8 × 16 heads × 406 × 406 scores with
	// the relative position bias and a padding mask; with drop, attention
	// dropout fused in (the same pass also writes dropout(y)).
	forward := func(name string, drop bool) {
		registerBench(BenchOp{Name: name, Shapes: []string{"8x16x406x406"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				B, H, Tq, Tk, err := tlShape4(shape)
				if err != nil {
					return nil, err
				}
				n := int64(B) * int64(H) * int64(Tq) * int64(Tk)
				nb, nm := int64(H)*int64(Tq)*int64(Tk), int64(B)*int64(Tk)
				sizes := []int64{n, n, nb, nm}
				if drop {
					sizes = append(sizes, n, 1) // dropout(y), seed
				}
				bufs, free, err := benchBuffers(d, sizes...)
				if err != nil {
					return nil, err
				}
				x, y := Whole(bufs[0]), Whole(bufs[1])
				o := SoftmaxOpts{Bias: Whole(bufs[2]), Mask: Whole(bufs[3])}
				bytes := 4 * float64(2*n+nb+nm)
				if drop {
					o.Dropout, o.DropoutOut = DropoutMask{P: 0.1, Seed: Whole(bufs[5])}, Whole(bufs[4])
					bytes += 4 * float64(n)
				}
				return &BenchCase{Op: name, Shape: shape, Bytes: bytes, Free: free,
					Record: func(r *gpu.Recorder) error { return Softmax(r, y, x, B, H, Tq, Tk, o) }}, nil
			}})
	}
	forward("softmax", false)
	forward("softmax-dropout", true)
	backward := func(name string, drop bool) {
		registerBench(BenchOp{Name: name, Shapes: []string{"8x16x406x406"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				B, H, Tq, Tk, err := tlShape4(shape)
				if err != nil {
					return nil, err
				}
				rows := int64(B) * int64(H) * int64(Tq)
				n := rows * int64(Tk)
				bufs, free, err := benchBuffers(d, n, n, n, 1)
				if err != nil {
					return nil, err
				}
				y, dy, dx := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
				m := DropoutMask{P: 0.1, Seed: Whole(bufs[3])}
				return &BenchCase{Op: name, Shape: shape, Bytes: 12 * float64(n), Free: free,
					Record: func(r *gpu.Recorder) error {
						if drop {
							return SoftmaxDropoutBackward(r, dx, dy, y, int(rows), Tk, m, false)
						}
						return SoftmaxBackward(r, dx, dy, y, int(rows), Tk, false)
					}}, nil
			}})
	}
	backward("softmax-bwd", false)
	backward("softmax-dropout-bwd", true)
}
