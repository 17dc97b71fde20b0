package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// Embedding gathers rows of table (V, C) for ids (..., int32), giving
// (..., C). Ids outside [0, V) give zero rows (validate ids on the host).
// A frozen table may be stored in f16 or bf16; the rows come out f32.
func Embedding(table, ids *Tensor) *Tensor {
	e := table.e
	const op = "embedding"
	var shape []int
	if ids != nil {
		shape = ids.Shape()
	}
	shape = append(shape, table.d(1))
	if !e.weightOK(op, "table", table) || !e.idsOK(op, "ids", ids) {
		return e.poisoned(shape, F32)
	}
	if table.Rank() != 2 {
		e.failf("%s: table %v must be (V, C)", op, table)
		return e.poisoned(shape, F32)
	}
	V, C, n := table.Dim(0), table.Dim(1), ids.Len()
	out := e.newTensor(op, F32, append(ids.Shape(), C)...)
	if e.ok() {
		e.fail(kernels.Embedding(e.rec, out.Mem(), ids.Mem(), table.Mem(), n, V, C))
		e.afterDispatch()
	}
	if e.needsGrad(table) {
		e.record(op, out, []*Tensor{table}, []*Tensor{ids}, func(g *Tensor) {
			dst, acc := e.gradDst(table)
			if e.ok() {
				e.fail(kernels.EmbeddingBackward(e.rec, dst, ids.Mem(), g.Mem(), n, V, C, acc))
			}
		})
	}
	return out
}
