package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Contrastive loss: InfoNCE with a fixed positive at index 0 and a per-row
// set of negatives. For row b of pos (B,), neg (B, P) and the 0/1 mask
// negatives (B, P),
//
//	loss_b = −log( exp(pos_b/τ) / (exp(pos_b/τ) + Σ_{j: negatives[b,j]=1} exp(neg[b,j]/τ)) )
//
// and 0 for a row without negatives; the loss is the mean of loss_b over
// all B rows. One workgroup per row computes loss_b by log-sum-exp with the
// row's largest score m subtracted, as (m − pos_b)/τ + log(exp((pos_b −
// m)/τ) + Σ_j exp((neg[b,j] − m)/τ)): differences of scores before the
// division by τ, so that large scores lose no precision (see
// shaders/contrastive.comp). The mean is Mean over the rows.

var contrastiveKernel = kernel("contrastive", 11,
	gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)

// The MODE specialization constant of shaders/contrastive.comp.
const (
	contrastiveForward  = 0
	contrastiveBackward = 1
)

// ContrastiveScratch is the number of elements of the scratch array
// Contrastive needs for B rows: the per-row losses.
func ContrastiveScratch(B int64) int64 { return B }

// contrastiveArgs is one contrastive dispatch sequence.
type contrastiveArgs struct {
	op                         string
	pos, neg, negatives, dloss Mem
	y, g                       Mem // row losses or dpos, dneg
	B, P                       int64
	tau                        float32
	flags                      uint32
}

// check validates the shape, τ and the inputs, and returns the device.
func (c contrastiveArgs) check(outs ...arOperand) (*gpu.Device, error) {
	if err := arDims(c.op, c.B, c.P); err != nil {
		return nil, err
	}
	if !(c.tau > 0) || math.IsInf(float64(c.tau), 0) {
		return nil, fmt.Errorf("%s: temperature %v must be positive and finite", c.op, c.tau)
	}
	ops := append([]arOperand{{"pos", c.pos, c.B}, {"neg", c.neg, c.B * c.P}, {"negatives", c.negatives, c.B * c.P}}, outs...)
	return arCheck(c.op, ops...)
}

// rows records the shader over all rows, in pieces that fit one binding.
// y and g that are nil are bound to the other one (and not written).
func (c contrastiveArgs) rows(r *gpu.Recorder, d *gpu.Device, mode uint32, scale float32) error {
	wg, err := longRowWG(d, c.op, c.P)
	if err != nil {
		return err
	}
	p, err := pipeline(d, c.op, contrastiveKernel, wg, mode)
	if err != nil {
		return err
	}
	P := c.P
	return rowPieces(d, c.op, c.B, P, func(r0, rows int64) error {
		pb, po := texelSpan(d, c.pos.At(r0), rows, 1)
		nb, no := texelSpan(d, c.neg.At(r0*P), rows*P, 1)
		mb, mo := texelSpan(d, c.negatives.At(r0*P), rows*P, 1)
		db, do := pb, po
		if c.dloss.Buf != nil {
			db, do = texelSpan(d, c.dloss, 1, 1)
		}
		var yb, gb gpu.Binding
		var yo, gofs uint32
		if c.y.Buf != nil {
			yb, yo = span(d, c.y.At(r0), rows)
		}
		if c.g.Buf != nil {
			gb, gofs = span(d, c.g.At(r0*P), rows*P)
		}
		if c.y.Buf == nil {
			yb, yo = gb, gofs
		}
		if c.g.Buf == nil {
			gb, gofs = yb, yo
		}
		push := []uint32{uint32(rows), uint32(P), po, no, mo, do, yo, gofs, f32(c.tau), f32(scale), c.flags}
		return r.Dispatch(p, arRowGrid(d, rows), push, pb, nb, mb, db, yb, gb)
	})
}

// Contrastive sets loss[0] to the contrastive loss of pos (B,) against the
// negatives of neg (B, P) selected by negatives (B, P) of 0/1, at
// temperature tau > 0: the mean over all B rows of loss_b (0 for a row
// without negatives). scratch holds ContrastiveScratch(B) elements.
func Contrastive(r *gpu.Recorder, loss, scratch, pos, neg, negatives Mem, B, P int64, tau float32) error {
	c := contrastiveArgs{op: fmt.Sprintf("contrastive %dx%d", B, P), pos: pos, neg: neg, negatives: negatives,
		y: scratch, B: B, P: P, tau: tau}
	d, err := c.check(arOperand{"loss", loss, 1}, arOperand{"scratch", scratch, ContrastiveScratch(B)})
	if err != nil {
		return err
	}
	if err := c.rows(r, d, contrastiveForward, 1); err != nil {
		return err
	}
	if err := Mean(r, loss, scratch, 1, B, 1); err != nil {
		return fmt.Errorf("%s: %w", c.op, err)
	}
	return nil
}

// ContrastiveBackward sets dpos (B,) and dneg (B, P) (adds with
// accumulate) to dloss[0] times the gradients of Contrastive's loss: with
// p_j the softmax weight of negative j among the positive and the row's
// negatives, dneg[b, j] = p_j/(τ·B) for the row's negatives and 0
// elsewhere, dpos[b] = −Σ_j p_j/(τ·B). dloss is a device scalar (1,); nil
// means 1. A nil dpos or dneg is not computed.
func ContrastiveBackward(r *gpu.Recorder, dpos, dneg, dloss, pos, neg, negatives Mem, B, P int64, tau float32, accumulate bool) error {
	c := contrastiveArgs{op: fmt.Sprintf("contrastive_backward %dx%d", B, P), pos: pos, neg: neg, negatives: negatives,
		dloss: dloss, y: dpos, g: dneg, B: B, P: P, tau: tau, flags: 4 * arFlag(accumulate)}
	var outs []arOperand
	if dpos.Buf != nil {
		outs = append(outs, arOperand{"dpos", dpos, B})
		c.flags |= 1
	}
	if dneg.Buf != nil {
		outs = append(outs, arOperand{"dneg", dneg, B * P})
		c.flags |= 2
	}
	if dloss.Buf != nil {
		outs = append(outs, arOperand{"dloss", dloss, 1})
		c.flags |= 8
	}
	d, err := c.check(outs...)
	if err != nil || c.flags&3 == 0 {
		return err
	}
	return c.rows(r, d, contrastiveBackward, float32(1/float64(B)))
}

// Float64 references.

// contrastiveRow returns the logits of row b, the positive's first, and
// whether the row has negatives.
func contrastiveRow(pos, neg, negatives []float64, b, P int, tau float64) ([]float64, bool) {
	l := []float64{pos[b] / tau}
	for j := 0; j < P; j++ {
		if negatives[b*P+j] != 0 {
			l = append(l, neg[b*P+j]/tau)
		}
	}
	return l, len(l) > 1
}

// ContrastiveRef returns the contrastive loss of pos (B,), neg (B, P) and
// the 0/1 mask negatives (B, P) at temperature tau.
func ContrastiveRef(pos, neg, negatives []float64, B, P int, tau float64) float64 {
	sum := 0.0
	for b := 0; b < B; b++ {
		if l, ok := contrastiveRow(pos, neg, negatives, b, P, tau); ok {
			sum += logSumExp(l) - l[0]
		}
	}
	return sum / float64(B)
}

// ContrastiveBackwardRef returns dloss times the gradients of
// ContrastiveRef with respect to pos and neg.
func ContrastiveBackwardRef(pos, neg, negatives []float64, B, P int, tau, dloss float64) (dpos, dneg []float64) {
	dpos, dneg = make([]float64, B), make([]float64, B*P)
	c := dloss / (float64(B) * tau)
	for b := 0; b < B; b++ {
		l, ok := contrastiveRow(pos, neg, negatives, b, P, tau)
		if !ok {
			continue
		}
		lse := logSumExp(l)
		dpos[b] = c * (math.Exp(l[0]-lse) - 1)
		for j := 0; j < P; j++ {
			if negatives[b*P+j] != 0 {
				dneg[b*P+j] = c * math.Exp(neg[b*P+j]/tau-lse)
			}
		}
	}
	return dpos, dneg
}
