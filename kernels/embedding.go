package kernels

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Embedding gather and its backward, a deterministic scatter-add into the
// table. Tables larger than one binding may hold (T5 v1.1-XL: 32128 × 2048
// floats, 251 MiB) are processed in row chunks.

var (
	embeddingKernel    = kernel("embedding", 9, gpu.ReadOnly, gpu.TexelRGBA32F, gpu.ReadWrite)
	embeddingBwdKernel = kernel("embedding_bwd", 7, gpu.ReadOnly, gpu.TexelRGBA32F, gpu.ReadWrite)
	// The gather from a 16-bit table: the same source compiled with -DW16,
	// the table read as 32-bit words of two values.
	embeddingW16Kernel = kernel("embedding_w16", 9, gpu.ReadOnly, gpu.ReadOnly, gpu.ReadWrite)
)

// embeddingBwdWG is the workgroup size of shaders/embedding_bwd.comp.
const embeddingBwdWG = 64

// Embedding gathers rows of the table:
//
//	out[i, :] = table[ids[i], :]
//
// out is (n, C), ids is (n,) int32 (upload with gpu.WriteSlice), table is
// (V, C). An id outside [0, V) is never read out of bounds: its output row
// is zeros (check ids on the host to report them). The table may hold 16-bit
// floats (a frozen embedding stored as float16 or bfloat16), widened to fp32
// rows of out.
func Embedding(r *gpu.Recorder, out, ids, table Mem, n, V, C int) error {
	const op = "embedding"
	if err := tlPositive(op, "n, V and C", n, V, C); err != nil {
		return err
	}
	nc := int64(n) * int64(C)
	shape := fmt.Sprintf("ids is (%d,), table is %s", n, tlDims(V, C))
	if err := table.check16(op, "table", int64(V)*int64(C)); err != nil {
		return fmt.Errorf("%w (%s)", err, shape)
	}
	d, err := tlCheck(op, shape, tlOperand{"out", out, nc}, tlOperand{"ids", ids, int64(n)})
	if err != nil {
		return err
	}
	if table.Buf.Device() != d {
		return fmt.Errorf("%s: out and table are on different devices (%s)", op, shape)
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	k, spec := embeddingKernel, []uint32{wg}
	view, tableChunks := tlView, func(f func(v0, v1 int64) error) error { return tlRowChunks(op, d, int64(V), int64(C), f) }
	if table.Type.Is16() {
		k, spec = embeddingW16Kernel, append(spec, mmBool(table.Type == ElemBF16))
		view = func(d *gpu.Device, m Mem, n int64) (gpu.Binding, uint32) { return span(d, m, max(n, 1)) }
		tableChunks = func(f func(v0, v1 int64) error) error {
			per := maxElemsOf(d, table.Type) / int64(C)
			if per < 1 {
				return fmt.Errorf("%s: a row of %d elements exceeds what one binding may hold on %s", op, C, d)
			}
			return chunks(int64(V), per, f)
		}
	}
	p, err := pipeline(d, op, k, spec...)
	if err != nil {
		return err
	}
	// Rows of ids (and out) in chunks, and within each the table in chunks
	// of rows; ids outside [0, V) are zeroed by the first table chunk.
	return tlRowChunks(op, d, int64(n), int64(C), func(lo, hi int64) error {
		ib, is := span(d, ids.At(lo), hi-lo)
		ob, os := tlOut(d, out.At(lo*int64(C)), (hi-lo)*int64(C))
		return tableChunks(func(v0, v1 int64) error {
			tb, ts := view(d, table.At(v0*int64(C)), (v1-v0)*int64(C))
			return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
				[]uint32{uint32(hi - lo), uint32(C), uint32(v0), uint32(v1), uint32(V), tlBit(v0 == 0), is, ts, os}, ib, tb, ob)
		})
	})
}

// EmbeddingBackward computes the table gradient of Embedding,
//
//	dtable[v, :] = Σ_{i: ids[i] = v} dout[i, :]   (in order of i),
//
// written to dtable, or added to it when accumulate. Duplicate ids add up
// deterministically: each invocation owns a column and walks the ids in
// order. Ids outside [0, V) contribute nothing. dtable is (V, C), ids is
// (n,) int32, dout is (n, C). Without accumulate the whole table is zeroed
// first (V·C writes).
func EmbeddingBackward(r *gpu.Recorder, dtable, ids, dout Mem, n, V, C int, accumulate bool) error {
	const op = "embedding backward"
	if err := tlPositive(op, "n, V and C", n, V, C); err != nil {
		return err
	}
	nv := int64(V) * int64(C)
	d, err := tlCheck(op, fmt.Sprintf("ids is (%d,), table is %s", n, tlDims(V, C)),
		tlOperand{"dtable", dtable, nv}, tlOperand{"ids", ids, int64(n)}, tlOperand{"dout", dout, int64(n) * int64(C)})
	if err != nil {
		return err
	}
	if !accumulate {
		if err := Fill(r, dtable, nv, 0); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	// Whole texels per row when the table rows start on 16-byte boundaries.
	vec4 := dtable.Off%4 == 0 && C%4 == 0
	p, err := pipeline(d, op, embeddingBwdKernel, tlBit(vec4))
	if err != nil {
		return err
	}
	cols := int64(C)
	if vec4 {
		cols /= 4
	}
	groups := [3]uint32{uint32((cols + embeddingBwdWG - 1) / embeddingBwdWG), 1, 1}
	return tlRowChunks(op, d, int64(V), int64(C), func(v0, v1 int64) error {
		tb, ts := tlOut(d, dtable.At(v0*int64(C)), (v1-v0)*int64(C))
		if vec4 && ts%4 != 0 {
			return fmt.Errorf("%s: internal: misaligned vec4 table view (shift %d)", op, ts)
		}
		// Ids in chunks that keep each invocation's loop short.
		return tlRowChunksMax(op, d, int64(n), int64(C), tlMaxLoop, func(lo, hi int64) error {
			ib, is := span(d, ids.At(lo), hi-lo)
			db, ds := tlView(d, dout.At(lo*int64(C)), (hi-lo)*int64(C))
			return r.Dispatch(p, groups, []uint32{uint32(hi - lo), uint32(C), uint32(v0), uint32(v1), is, ds, ts}, ib, db, tb)
		})
	})
}

// EmbeddingRef is the float64 reference of Embedding.
func EmbeddingRef(out []float64, ids []int32, table []float64, V, C int) {
	for i, id := range ids {
		for j := 0; j < C; j++ {
			out[i*C+j] = 0
			if id >= 0 && int(id) < V {
				out[i*C+j] = table[int(id)*C+j]
			}
		}
	}
}

// EmbeddingBackwardRef sets dtable to the table gradient of Embedding.
func EmbeddingBackwardRef(dtable []float64, ids []int32, dout []float64, V, C int) {
	for i := range dtable[:V*C] {
		dtable[i] = 0
	}
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			continue
		}
		for j := 0; j < C; j++ {
			dtable[int(id)*C+j] += dout[i*C+j]
		}
	}
}

// embeddingBench makes the embedding benchmarks: shape "NxVxC".
func embeddingBench(name string, bwd bool) BenchOp {
	return BenchOp{Name: name, Shapes: []string{"3248x32128x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			v, err := ParseShape(shape, 3)
			if err != nil {
				return nil, err
			}
			n, V, C := v[0], v[1], v[2]
			nc, vc := int64(n)*int64(C), int64(V)*int64(C)
			bufs, free, err := benchBuffers(d, nc, vc, int64(n))
			if err != nil {
				return nil, err
			}
			ids := make([]int32, n)
			s := uint32(12345)
			for i := range ids {
				s = s*1664525 + 1013904223
				ids[i] = int32(s % uint32(V))
			}
			if err := gpu.WriteSlice(bufs[2], 0, ids); err != nil {
				free()
				return nil, err
			}
			o, table, im := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
			c := &BenchCase{Op: name, Shape: shape, Bytes: 4 * float64(2*nc+int64(n)), Free: free,
				Record: func(r *gpu.Recorder) error { return Embedding(r, o, im, table, n, V, C) }}
			if bwd {
				// Accumulating: the scatter alone, without zeroing the table.
				c.Bytes = 4 * float64(3*nc+int64(n))
				c.Record = func(r *gpu.Recorder) error { return EmbeddingBackward(r, table, im, o, n, V, C, true) }
			}
			return c, nil
		}}
}

func init() {
	// T5-large: 8 × 406 token ids into the 32128 × 1024 shared embedding.
	registerBench(embeddingBench("embedding", false))
	registerBench(embeddingBench("embedding-bwd", true))
}
