package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Partition is SHLPT's threshold partition of the similarity weights alpha
// (B, P) (see kernels.Partition): mixed (B, P) renormalizes each row's
// weights above o.Delta to sum to 1 (zeros for a row that keeps nothing),
// and negatives (B, P) marks with 1 the prompts that are the row's
// negatives. Gradients flow to alpha through mixed only; what is kept and
// the negatives are constants, and negatives never requires grad.
func Partition(alpha *Tensor, o kernels.PartitionOpts) (mixed, negatives *Tensor) {
	e := alpha.e
	const op = "partition"
	if !e.inputsOK(op, alpha) {
		return e.poisoned(alpha.shape, F32), e.poisoned(alpha.shape, F32)
	}
	if alpha.Rank() != 2 {
		e.failf("%s: alpha %v must be (B, P)", op, alpha)
		return e.poisoned(alpha.shape, F32), e.poisoned(alpha.shape, F32)
	}
	B, P := int64(alpha.Dim(0)), int64(alpha.Dim(1))
	mixed = e.newTensor(op, F32, alpha.shape...)
	negatives = e.newTensor(op, F32, alpha.shape...)
	if e.ok() {
		e.fail(kernels.Partition(e.rec, mixed.Mem(), negatives.Mem(), alpha.Mem(), B, P, o))
		e.afterDispatch()
	}
	if e.needsGrad(alpha) {
		e.record(op, mixed, []*Tensor{alpha}, []*Tensor{alpha, mixed}, func(g *Tensor) {
			dst, acc := e.gradDst(alpha)
			if e.ok() {
				e.fail(kernels.PartitionBackward(e.rec, dst, g.Mem(), alpha.Mem(), mixed.Mem(), B, P, o, acc))
			}
		})
	}
	return mixed, negatives
}
