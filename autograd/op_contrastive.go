package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Contrastive is InfoNCE with a fixed positive and a per-row set of
// negatives, one element: the mean over all B rows of
//
//	loss_b = −log( exp(pos_b/τ) / (exp(pos_b/τ) + Σ_{j: negatives[b,j]=1} exp(neg[b,j]/τ)) )
//
// with loss_b = 0 for a row without negatives (see kernels.Contrastive).
// pos is (B,), neg and negatives (B, P); negatives holds 0/1 and is a
// constant (no gradient flows to it). Gradients flow to pos and neg.
func Contrastive(pos, neg, negatives *Tensor, tau float32) *Tensor {
	e := pos.e
	const op = "contrastive"
	if !e.inputsOK(op, pos, neg, negatives) {
		return e.poisoned([]int{1}, F32)
	}
	if pos.Rank() != 1 || neg.Rank() != 2 || neg.Dim(0) != pos.Dim(0) || !sameShape(negatives.shape, neg.shape) {
		e.failf("%s: pos %v must be (B,), neg %v and negatives %v (B, P)", op, pos, neg, negatives)
		return e.poisoned([]int{1}, F32)
	}
	B, P := int64(neg.Dim(0)), int64(neg.Dim(1))
	out := e.newTensor(op, F32, 1)
	scratch := e.newTensor(op, F32, int(kernels.ContrastiveScratch(B)))
	if e.ok() {
		e.fail(kernels.Contrastive(e.rec, out.Mem(), scratch.Mem(), pos.Mem(), neg.Mem(), negatives.Mem(), B, P, tau))
		e.afterDispatch()
	}
	scratch.Release()
	if e.needsGrad(pos, neg) {
		e.record(op, out, []*Tensor{pos, neg}, []*Tensor{pos, neg, negatives}, func(g *Tensor) {
			if pos.requiresGrad {
				dst, acc := e.gradDst(pos)
				if e.ok() {
					e.fail(kernels.ContrastiveBackward(e.rec, dst, kernels.Mem{}, g.Mem(), pos.Mem(), neg.Mem(), negatives.Mem(), B, P, tau, acc))
				}
			}
			if neg.requiresGrad {
				dst, acc := e.gradDst(neg)
				if e.ok() {
					e.fail(kernels.ContrastiveBackward(e.rec, kernels.Mem{}, dst, g.Mem(), pos.Mem(), neg.Mem(), negatives.Mem(), B, P, tau, acc))
				}
			}
		})
	}
	return out
}
