package autograd

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// Linear returns x·wᵀ: x is (..., in), w is (out, in) as HF stores linear
// weights, the result is (..., out). A frozen w gets no gradient and costs
// nothing in backward; x is kept for backward only when w is trainable. w
// may be stored in f16 or bf16 when frozen (x's gradient reads it as it is).
func Linear(x, w *Tensor) *Tensor {
	e := x.e
	const op = "linear"
	shape := append(leading(x.shape, 1), w.d(0))
	if !e.inputsOK(op, x) || !e.weightOK(op, "weight", w) {
		return e.poisoned(shape, F32)
	}
	if w.Rank() != 2 || x.Rank() < 1 || x.Dim(-1) != w.Dim(1) {
		e.failf("%s: x %v does not match weight %v (out, in)", op, x, w)
		return e.poisoned(shape, F32)
	}
	rows := x.Len() / x.Dim(-1)
	p := kernels.MatMulParams{M: rows, N: w.Dim(0), K: w.Dim(1), TransB: true, Alpha: 1}
	return e.matmul(op, x, w, p, shape)
}

// MatMul returns op(a)·op(b) where op transposes the last two axes when the
// flag is set. a is (..., M, K) (or (..., K, M) when transA); b is
// (..., K, N) (or (..., N, K)) with the same leading axes, or 2-D and then
// shared by every batch. The result is (..., M, N). b may be stored in f16
// or bf16 when it does not require a gradient, except with transA when a
// requires one (its gradient would read b as the left operand).
func MatMul(a, b *Tensor, transA, transB bool) *Tensor {
	e := a.e
	const op = "matmul"
	M, K := a.d(-2), a.d(-1)
	if transA {
		M, K = K, M
	}
	Kb, N := b.d(-2), b.d(-1)
	if transB {
		Kb, N = N, Kb
	}
	lead := leading(a.shape, 2)
	shape := append(append([]int(nil), lead...), M, N)
	if !e.inputsOK(op, a) || !e.weightOK(op, "b", b) {
		return e.poisoned(shape, F32)
	}
	if b.dtype.Is16() && transA && e.needsGrad(a) {
		e.failf("%s: the gradient of a transposed %v would read the %v b %v as its left operand, which must be f32", op, a, b.dtype, b)
		return e.poisoned(shape, F32)
	}
	if a.Rank() < 2 || b.Rank() < 2 {
		e.failf("%s: %v and %v must have at least 2 axes", op, a, b)
		return e.poisoned(shape, F32)
	}
	batch := numel(lead)
	shared := b.Rank() == 2 && batch > 1
	if K != Kb || (!shared && !sameShape(lead, b.shape[:b.Rank()-2])) {
		e.failf("%s: %v (trans %v) and %v (trans %v) do not multiply", op, a, transA, b, transB)
		return e.poisoned(shape, F32)
	}
	p := kernels.MatMulParams{M: M, N: N, K: K, TransA: transA, TransB: transB, Batch: batch, Alpha: 1,
		StrideA: int64(M * K), StrideC: int64(M * N)}
	if !shared {
		p.StrideB = int64(K * N)
	}
	return e.matmul(op, a, b, p, shape)
}

// matmul records C = A·B per p and its backward.
func (e *Engine) matmul(op string, a, b *Tensor, p kernels.MatMulParams, shape []int) *Tensor {
	return e.matmulOver(op, a, b, p, shape, false)
}

// matmulRows is matmul where p reads only some of b's elements (a prefix
// of rows): a fresh gradient of b is zeroed first, since the product's
// gradient covers only those elements.
func (e *Engine) matmulRows(op string, a, b *Tensor, p kernels.MatMulParams, shape []int) *Tensor {
	return e.matmulOver(op, a, b, p, shape, true)
}

func (e *Engine) matmulOver(op string, a, b *Tensor, p kernels.MatMulParams, shape []int, partialB bool) *Tensor {
	out := e.newTensor(op, F32, shape...)
	if !e.ok() {
		return out
	}
	if err := kernels.MatMul(e.rec, out.Mem(), a.Mem(), b.Mem(), p, kernels.Mem{}); err != nil {
		e.fail(fmt.Errorf("%s %v x %v: %w", op, a, b, err))
		return out
	}
	e.afterDispatch()
	if !e.needsGrad(a, b) {
		return out
	}
	// Keep only what the wanted gradients read: dA needs B, dB needs A.
	var saved []*Tensor
	if a.requiresGrad {
		saved = append(saved, b)
	}
	if b.requiresGrad {
		saved = append(saved, a)
	}
	e.record(op, out, []*Tensor{a, b}, saved, func(g *Tensor) {
		if a.requiresGrad {
			dst, acc := e.gradDst(a)
			if e.ok() {
				e.fail(kernels.MatMulGradA(e.rec, dst, g.Mem(), b.Mem(), p, acc))
			}
		}
		if b.requiresGrad {
			dst, acc := e.gradDst(b)
			if e.ok() && partialB && !acc {
				e.fail(kernels.Fill(e.rec, dst, int64(b.Len()), 0))
				acc = true
			}
			if e.ok() {
				e.fail(kernels.MatMulGradB(e.rec, dst, a.Mem(), g.Mem(), p, acc))
			}
		}
	})
	return out
}
