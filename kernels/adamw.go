package kernels

import (
	"errors"
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// The AdamW optimizer as torch.optim.AdamW, and global gradient-norm
// clipping as torch.nn.utils.clip_grad_norm_. The hyperparameters, the step
// count and the bias corrections live in a small device buffer, so that a
// training step recorded once (gpu.Program) can be replayed: AdamWStep
// advances the step on the device, then AdamW updates each parameter array.
//
// One replayed step is, in recording order:
//
//	AdamWStep(r, hyper)
//	ClipGradNorm(r, coef, Mem{}, scratch, grads, sizes, maxNorm) // optional
//	AdamW(r, p_i, g_i, m_i, v_i, n_i, hyper, coef)              // per array
//
// Learning-rate schedules rewrite the LR slot between runs with
// WriteAdamWHyper or gpu.WriteSlice.

var (
	adamwKernel4       = kernel("adamw", 10, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite)
	adamwKernel1       = kernel("adamw", 10, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite)
	adamwStepKernel    = kernel("adamw_step", 1, gpu.ReadWrite)
	gradNormCoefKernel = kernel("gradnorm_coef", 6, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
)

// The layout of the hyper buffer: AdamWHyperLen float32 slots.
const (
	HyperLR          = 0 // learning rate
	HyperBeta1       = 1
	HyperBeta2       = 2
	HyperEps         = 3
	HyperWeightDecay = 4
	HyperStep        = 5 // t, the number of steps taken (as a float)
	HyperBC1         = 6 // 1 − β1^t
	HyperBC2         = 7 // 1 − β2^t
	HyperOneMinusB1  = 8 // 1 − β1, rounded from float64 (β1 as float32 would lose it)
	HyperOneMinusB2  = 9 // 1 − β2
	AdamWHyperLen    = 10
)

// ClipEps is the term clip_grad_norm_ adds to the total norm.
const ClipEps = 1e-6

// AdamWHyper are AdamW's hyperparameters and the number of steps taken.
type AdamWHyper struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
	Step                               int64
}

// DefaultAdamW is torch.optim.AdamW's default configuration.
var DefaultAdamW = AdamWHyper{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}

// slots returns the hyper buffer's contents for h.
func (h AdamWHyper) slots() []float32 {
	bc1 := 1 - math.Pow(h.Beta1, float64(h.Step))
	bc2 := 1 - math.Pow(h.Beta2, float64(h.Step))
	return []float32{float32(h.LR), float32(h.Beta1), float32(h.Beta2), float32(h.Eps), float32(h.WeightDecay),
		float32(h.Step), float32(bc1), float32(bc2), float32(1 - h.Beta1), float32(1 - h.Beta2)}
}

// WriteAdamWHyper writes h into the hyper buffer (AdamWHyperLen,) from the
// host. h.Step is the number of steps already taken (0 for a fresh
// optimizer); the bias corrections are computed for it in float64.
func WriteAdamWHyper(hyper Mem, h AdamWHyper) error {
	const op = "adamw_hyper"
	if _, err := arCheck(op, arOperand{"hyper", hyper, AdamWHyperLen}); err != nil {
		return err
	}
	if h.Step < 0 || h.Step > 1<<24 {
		return fmt.Errorf("%s: step %d out of range", op, h.Step)
	}
	if !(h.Beta1 >= 0 && h.Beta1 < 1 && h.Beta2 >= 0 && h.Beta2 < 1) {
		return fmt.Errorf("%s: betas (%v, %v) must lie in [0, 1)", op, h.Beta1, h.Beta2)
	}
	return gpu.WriteSlice(hyper.Buf, hyper.Off, h.slots())
}

// AdamWStep advances the step in hyper (AdamWHyperLen,): t += 1 and the
// bias corrections for the new t. Record it once per optimizer step, before
// the AdamW calls.
func AdamWStep(r *gpu.Recorder, hyper Mem) error {
	const op = "adamw_step"
	d, err := arCheck(op, arOperand{"hyper", hyper, AdamWHyperLen})
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, adamwStepKernel)
	if err != nil {
		return err
	}
	hb, ho := span(d, hyper, AdamWHyperLen)
	return r.Dispatch(p, [3]uint32{1, 1, 1}, []uint32{ho}, hb)
}

// AdamW updates the parameters p (n,) and their moments m and v (n,) from
// the gradient g (n,) with the hyperparameters and bias corrections in
// hyper (AdamWHyperLen,), as one step of torch.optim.AdamW:
//
//	p ← p·(1 − lr·wd)
//	m ← m + (1 − β1)·(g − m)
//	v ← β2·v + (1 − β2)·g²
//	p ← p − (lr / bc1)·m / (√v / √bc2 + eps)
//
// clip (1,), when not nil, holds a coefficient that scales g first (see
// ClipGradNorm); nil means no clipping. g is not modified.
func AdamW(r *gpu.Recorder, p, g, m, v Mem, n int64, hyper, clip Mem) error {
	op := fmt.Sprintf("adamw %d", n)
	if err := arDims(op, n); err != nil {
		return err
	}
	ops := []arOperand{{"p", p, n}, {"g", g, n}, {"m", m, n}, {"v", v, n}, {"hyper", hyper, AdamWHyperLen}}
	if clip.Buf != nil {
		ops = append(ops, arOperand{"clip", clip, 1})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	vec4 := arAligned4(p.Off, g.Off, m.Off, v.Off)
	k, texel := adamwKernel1, int64(1)
	if vec4 {
		k, texel = adamwKernel4, 4
	}
	pl, err := pipeline(d, op, k, arFlag(vec4))
	if err != nil {
		return err
	}
	hb, ho := texelSpan(d, hyper, AdamWHyperLen, 1)
	cb, co := hb, ho
	if clip.Buf != nil {
		cb, co = texelSpan(d, clip, 1, 1)
	}
	return chunks(n, arBindElems(d), func(lo, hi int64) error {
		c := hi - lo
		gb, gofs := texelSpan(d, g.At(lo), c, texel)
		mb, mo := texelSpan(d, m.At(lo), c, texel)
		vb, vo := texelSpan(d, v.At(lo), c, texel)
		pb, po := span(d, p.At(lo), c)
		mob, moo := span(d, m.At(lo), c)
		vob, voo := span(d, v.At(lo), c)
		if vec4 {
			if err := arShifts4(op, gofs, mo, vo, po, moo, voo); err != nil {
				return err
			}
		}
		push := []uint32{uint32(c), gofs, mo, vo, ho, co, po, moo, voo, arFlag(clip.Buf != nil)}
		return r.Dispatch(pl, grid1D(d, (c+3)/4), push, gb, mb, vb, hb, cb, pb, mob, vob)
	})
}

// GradNormCoef sets coef[0] = min(maxNorm / (total + ClipEps), 1) where
// total = √(Σ_i sumsq[i]) is the global norm of k gradient arrays whose sums
// of squares are in sumsq (k,); norm (1,), when not nil, receives total.
func GradNormCoef(r *gpu.Recorder, coef, norm, sumsq Mem, k int64, maxNorm float32) error {
	op := fmt.Sprintf("grad_norm_coef %d", k)
	if err := arDims(op, k); err != nil {
		return err
	}
	ops := []arOperand{{"coef", coef, 1}, {"sumsq", sumsq, k}}
	if norm.Buf != nil {
		ops = append(ops, arOperand{"norm", norm, 1})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	if k > arLoopCap(d) {
		return fmt.Errorf("%s: more gradient arrays than this device sums in one invocation (%d)", op, arLoopCap(d))
	}
	if !(maxNorm > 0) {
		return fmt.Errorf("%s: max norm %v must be positive", op, maxNorm)
	}
	p, err := pipeline(d, op, gradNormCoefKernel)
	if err != nil {
		return err
	}
	sb, so := texelSpan(d, sumsq, k, 1)
	cb, co := span(d, coef, 1)
	nb, no := cb, co
	if norm.Buf != nil {
		nb, no = span(d, norm, 1)
	}
	push := []uint32{uint32(k), so, co, no, f32(maxNorm), arFlag(norm.Buf != nil)}
	return r.Dispatch(p, [3]uint32{1, 1, 1}, push, sb, cb, nb)
}

// ClipGradNorm computes the coefficient of torch.nn.utils.clip_grad_norm_
// over the gradient arrays grads (grads[i] has sizes[i] elements) into
// coef (1,): each array's sum of squares goes to scratch[i] (len(grads),),
// then GradNormCoef. norm (1,), when not nil, receives the total norm. The
// gradients are not modified: AdamW applies coef.
func ClipGradNorm(r *gpu.Recorder, coef, norm, scratch Mem, grads []Mem, sizes []int64, maxNorm float32) error {
	const op = "clip_grad_norm"
	if len(grads) != len(sizes) || len(grads) == 0 {
		return fmt.Errorf("%s: %d gradient arrays with %d sizes", op, len(grads), len(sizes))
	}
	if _, err := arCheck(op, arOperand{"scratch", scratch, int64(len(grads))}); err != nil {
		return err
	}
	for i, g := range grads {
		if err := SumSquares(r, scratch.At(int64(i)), g, sizes[i]); err != nil {
			return fmt.Errorf("%s: gradient %d: %w", op, i, err)
		}
	}
	return GradNormCoef(r, coef, norm, scratch, int64(len(grads)), maxNorm)
}

// AdamWRef is the float64 reference of one torch.optim.AdamW step: h.Step is
// the step being taken (1 for the first), clip the gradient's coefficient
// (1 for none). It updates p, m and v in place.
func AdamWRef(p, g, m, v []float64, h AdamWHyper, clip float64) {
	bc1 := 1 - math.Pow(h.Beta1, float64(h.Step))
	bc2 := 1 - math.Pow(h.Beta2, float64(h.Step))
	stepSize := h.LR / bc1
	for i := range p {
		gi := g[i] * clip
		p[i] *= 1 - h.LR*h.WeightDecay
		m[i] += (1 - h.Beta1) * (gi - m[i])
		v[i] = h.Beta2*v[i] + (1-h.Beta2)*gi*gi
		p[i] -= stepSize * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + h.Eps)
	}
}

// ClipGradNormRef returns clip_grad_norm_'s coefficient and total norm for
// the gradient arrays grads.
func ClipGradNormRef(grads [][]float64, maxNorm float64) (coef, total float64) {
	s := 0.0
	for _, g := range grads {
		s += SumSquaresRef(g)
	}
	total = math.Sqrt(s)
	return min(maxNorm/(total+ClipEps), 1), total
}

// Benchmarks: the SHLPT prompt of T5-large (150 × 1024 = 153600 parameters)
// and the prompt with its similarity estimator (206848).

func init() {
	registerBench(BenchOp{Name: "adamw", Shapes: []string{"153600", "206848"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			n, err := oneDim(shape)
			if err != nil {
				return nil, err
			}
			bufs, free, err := benchBuffers(d, n, n, n, n, AdamWHyperLen)
			if err != nil {
				return nil, err
			}
			p, g, m, v, hyper := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3]), Whole(bufs[4])
			h := DefaultAdamW
			h.Step = 10
			vv := make([]float32, n)
			for i := range vv {
				vv[i] = 1e-3
			}
			if err := errors.Join(WriteAdamWHyper(hyper, h), gpu.WriteSlice(v.Buf, 0, vv)); err != nil {
				free()
				return nil, err
			}
			return &BenchCase{Op: "adamw", Shape: shape, Bytes: 28 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error { return AdamW(r, p, g, m, v, n, hyper, Mem{}) }}, nil
		}})
	registerBench(BenchOp{Name: "clip_grad_norm", Shapes: []string{"153600", "206848"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			n, err := oneDim(shape)
			if err != nil {
				return nil, err
			}
			bufs, free, err := benchBuffers(d, n, 2)
			if err != nil {
				return nil, err
			}
			g, coef := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "clip_grad_norm", Shape: shape, Bytes: 4 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error {
					return ClipGradNorm(r, coef, Mem{}, coef.At(1), []Mem{g}, []int64{n}, 1)
				}}, nil
		}})
}
