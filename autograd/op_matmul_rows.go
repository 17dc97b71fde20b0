package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// MatMulRows is MatMul(a, b[..., :k, :], transA, transB): the product with
// the first k rows of each matrix of b, read in place through strides (b's
// matrices are R×C with R ≥ k; nothing is copied). Decoding uses it to
// attend over the filled part of a key/value cache. b has a's leading axes,
// or is 2-D and shared by every batch, as for MatMul. Gradients flow to a
// and to those k rows of b (the other rows get 0).
func MatMulRows(a, b *Tensor, transA, transB bool, k int) *Tensor {
	e := a.e
	const op = "matmul_rows"
	M, K := a.d(-2), a.d(-1)
	if transA {
		M, K = K, M
	}
	R, C := b.d(-2), b.d(-1)
	// op(b[:k]) is k×C, or C×k when transposed.
	Kb, N := k, C
	if transB {
		Kb, N = C, k
	}
	lead := leading(a.shape, 2)
	shape := append(append([]int(nil), lead...), M, N)
	if !e.inputsOK(op, a, b) {
		return e.poisoned(shape, F32)
	}
	if a.Rank() < 2 || b.Rank() < 2 || k <= 0 || k > R {
		e.failf("%s: %v and the first %d rows of %v", op, a, k, b)
		return e.poisoned(shape, F32)
	}
	batch := numel(lead)
	shared := b.Rank() == 2 && batch > 1
	if K != Kb || (!shared && !sameShape(lead, b.shape[:b.Rank()-2])) {
		e.failf("%s: %v (trans %v) and the first %d rows of %v (trans %v) do not multiply", op, a, transA, k, b, transB)
		return e.poisoned(shape, F32)
	}
	p := kernels.MatMulParams{M: M, N: N, K: K, TransA: transA, TransB: transB, Batch: batch, Alpha: 1,
		LDB: C, StrideA: int64(M * K), StrideC: int64(M * N)}
	if !shared {
		p.StrideB = int64(R * C)
	}
	return e.matmulRows(op, a, b, p, shape)
}
