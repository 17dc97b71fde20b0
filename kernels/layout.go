package kernels

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Data movement: one strided-copy kernel over up to four dimensions, and on
// top of it concat and slice along the sequence axis of (B, T, C) tensors,
// the attention head split (B, T, H·D) → (B, H, T, D) and merge, and batched
// transposes. Every backward is the inverse strided copy, accumulating when
// asked.

var (
	layoutKernel4 = kernel("layout", 23, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite) // VEC4 = 1
	layoutKernel1 = kernel("layout", 23, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)       // VEC4 = 0
)

// Contiguous returns the row-major strides of shape.
func Contiguous(shape [4]int64) [4]int64 {
	return [4]int64{shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1}
}

// layoutExtent is the number of elements from a view's first to its last element
// plus one.
func layoutExtent(shape, strides [4]int64) int64 {
	e := int64(1)
	for k := range shape {
		e += (shape[k] - 1) * strides[k]
	}
	return e
}

// StridedCopy sets y[i0, i1, i2, i3] = x[i0·xs0 + i1·xs1 + i2·xs2 + i3·xs3]
// for every index below shape, adding into y instead with accumulate. y is
// addressed with its own strides (Contiguous(shape) for a dense result).
// Strides are in elements from x.Off and y.Off and must be non-negative; y's
// strides must not map two indices to one element, and x and y must not
// overlap.
func StridedCopy(r *gpu.Recorder, y Mem, yStrides [4]int64, x Mem, xStrides [4]int64, shape [4]int64, accumulate bool) error {
	op := fmt.Sprintf("strided_copy %dx%dx%dx%d", shape[0], shape[1], shape[2], shape[3])
	return stridedCopy(r, op, y, yStrides, x, xStrides, shape, accumulate, false)
}

func stridedCopy(r *gpu.Recorder, op string, y Mem, ys [4]int64, x Mem, xs [4]int64, shape [4]int64, acc, zero bool) error {
	if err := arDims(op, shape[:]...); err != nil {
		return err
	}
	for k := range shape {
		if xs[k] < 0 || ys[k] < 0 {
			return fmt.Errorf("%s: negative strides (x %v, y %v)", op, xs, ys)
		}
		if ys[k] == 0 && shape[k] > 1 {
			return fmt.Errorf("%s: y stride %d is 0 for a dimension of %d", op, k, shape[k])
		}
	}
	ops := []arOperand{{"y", y, layoutExtent(shape, ys)}}
	if !zero {
		ops = append(ops, arOperand{"x", x, layoutExtent(shape, xs)})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	vec4 := shape[3]%4 == 0 && ys[3] == 1 && (zero || xs[3] == 1) &&
		arAligned4(y.Off, ys[0], ys[1], ys[2])
	if !zero {
		vec4 = vec4 && arAligned4(x.Off, xs[0], xs[1], xs[2])
	}
	k, texel := layoutKernel1, int64(1)
	if vec4 {
		k, texel = layoutKernel4, 4
	}
	// U vec4 groups (4U elements) of the inner dimension per invocation.
	u := int64(4)
	for vec4 && shape[3]%(4*u) != 0 {
		u /= 2
	}
	if !vec4 && shape[3] < 16 {
		u = 1
	}
	p, err := pipeline(d, op, k, arFlag(vec4), arFlag(zero), uint32(u))
	if err != nil {
		return err
	}
	return layoutPieces(arBindElems(d), shape, xs, ys, 0, 0, func(sh [4]int64, xo, yo int64) error {
		yv, xv := y.At(yo), x.At(xo)
		yb, yShift := span(d, yv, layoutExtent(sh, ys))
		inb, inShift := texelSpan(d, yv, 1, texel)
		if acc {
			inb, inShift = texelSpan(d, yv, layoutExtent(sh, ys), texel)
		}
		xb, xShift := inb, inShift
		if !zero {
			xb, xShift = texelSpan(d, xv, layoutExtent(sh, xs), texel)
		}
		if vec4 {
			if err := arShifts4(op, yShift, inShift, xShift); err != nil {
				return err
			}
		}
		q := (sh[3] + 4*u - 1) / (4 * u)
		n := sh[0] * sh[1] * sh[2] * q
		mq, shq := arMagic(uint32(q))
		m2, sh2 := arMagic(uint32(sh[2]))
		m1, sh1 := arMagic(uint32(sh[1]))
		push := []uint32{uint32(n), uint32(sh[3]), uint32(q), mq, shq, uint32(sh[2]), m2, sh2, uint32(sh[1]), m1, sh1,
			xShift, uint32(xs[0]), uint32(xs[1]), uint32(xs[2]), uint32(xs[3]),
			yShift, uint32(ys[0]), uint32(ys[1]), uint32(ys[2]), uint32(ys[3]),
			inShift, arFlag(acc)}
		return r.Dispatch(p, grid1D(d, n), push, xb, inb, yb)
	})
}

// layoutPieces calls f for sub-blocks of shape (with their x and y element
// offsets) whose x and y extents fit in limit elements, halving the
// outermost dimension larger than 1 until they do.
func layoutPieces(limit int64, shape, xs, ys [4]int64, xo, yo int64, f func(sh [4]int64, xo, yo int64) error) error {
	if layoutExtent(shape, xs) <= limit && layoutExtent(shape, ys) <= limit {
		return f(shape, xo, yo)
	}
	k := 0
	for k < 3 && shape[k] == 1 {
		k++
	}
	if shape[k] == 1 {
		return fmt.Errorf("layout: internal: a single element does not fit")
	}
	h := shape[k] / 2
	if k == 3 && h >= 16 {
		h = h / 16 * 16 // keep the groups of an invocation whole
	}
	lo, hi := shape, shape
	lo[k], hi[k] = h, shape[k]-h
	if err := layoutPieces(limit, lo, xs, ys, xo, yo, f); err != nil {
		return err
	}
	return layoutPieces(limit, hi, xs, ys, xo+h*xs[k], yo+h*ys[k], f)
}

// seq3 is a (B, T, C) block of a (B, rowT, C) tensor as a 4-D strided view.
func seq3(B, T, C, rowT int64) (shape, strides [4]int64) {
	return [4]int64{1, B, T, C}, [4]int64{0, rowT * C, C, 1}
}

// Concat joins a (B, Ta, C) and b (B, Tb, C) along the sequence axis into
// y (B, Ta+Tb, C).
func Concat(r *gpu.Recorder, y, a, b Mem, B, Ta, Tb, C int64) error {
	op := fmt.Sprintf("concat %dx(%d+%d)x%d", B, Ta, Tb, C)
	if err := arDims(op, B, Ta, Tb, C); err != nil {
		return err
	}
	T := Ta + Tb
	if _, err := arCheck(op, arOperand{"y", y, B * T * C}, arOperand{"a", a, B * Ta * C}, arOperand{"b", b, B * Tb * C}); err != nil {
		return err
	}
	sa, xa := seq3(B, Ta, C, Ta)
	_, ya := seq3(B, Ta, C, T)
	if err := stridedCopy(r, op, y, ya, a, xa, sa, false, false); err != nil {
		return err
	}
	sb, xb := seq3(B, Tb, C, Tb)
	_, yb := seq3(B, Tb, C, T)
	return stridedCopy(r, op, y.At(Ta*C), yb, b, xb, sb, false, false)
}

// ConcatBackward splits dy (B, Ta+Tb, C) into da (B, Ta, C) and db
// (B, Tb, C), adding with accumulate; a nil da or db is not computed.
func ConcatBackward(r *gpu.Recorder, da, db, dy Mem, B, Ta, Tb, C int64, accumulate bool) error {
	op := fmt.Sprintf("concat_backward %dx(%d+%d)x%d", B, Ta, Tb, C)
	if err := arDims(op, B, Ta, Tb, C); err != nil {
		return err
	}
	T := Ta + Tb
	ops := []arOperand{{"dy", dy, B * T * C}}
	if da.Buf != nil {
		ops = append(ops, arOperand{"da", da, B * Ta * C})
	}
	if db.Buf != nil {
		ops = append(ops, arOperand{"db", db, B * Tb * C})
	}
	if _, err := arCheck(op, ops...); err != nil {
		return err
	}
	if da.Buf != nil {
		sa, ya := seq3(B, Ta, C, Ta)
		_, xa := seq3(B, Ta, C, T)
		if err := stridedCopy(r, op, da, ya, dy, xa, sa, accumulate, false); err != nil {
			return err
		}
	}
	if db.Buf != nil {
		sb, yb := seq3(B, Tb, C, Tb)
		_, xb := seq3(B, Tb, C, T)
		return stridedCopy(r, op, db, yb, dy.At(Ta*C), xb, sb, accumulate, false)
	}
	return nil
}

func sliceCheck(op string, full, part Mem, B, T, C, t0, t1 int64) error {
	if err := arDims(op, B, T, C); err != nil {
		return err
	}
	if t0 < 0 || t1 > T || t0 >= t1 {
		return fmt.Errorf("%s: slice [%d, %d) of a sequence of %d", op, t0, t1, T)
	}
	_, err := arCheck(op, arOperand{"the full tensor", full, B * T * C}, arOperand{"the slice", part, B * (t1 - t0) * C})
	return err
}

// Slice sets y = x[:, t0:t1, :]. x is (B, T, C), y is (B, t1−t0, C).
func Slice(r *gpu.Recorder, y, x Mem, B, T, C, t0, t1 int64) error {
	op := fmt.Sprintf("slice %dx%dx%d [%d:%d]", B, T, C, t0, t1)
	if err := sliceCheck(op, x, y, B, T, C, t0, t1); err != nil {
		return err
	}
	sh, ys := seq3(B, t1-t0, C, t1-t0)
	_, xs := seq3(B, t1-t0, C, T)
	return stridedCopy(r, op, y, ys, x.At(t0*C), xs, sh, false, false)
}

// SliceBackward sets dx[:, t0:t1, :] = dy and the rest of dx to 0, or adds
// dy into dx[:, t0:t1, :] with accumulate. dx is (B, T, C), dy is
// (B, t1−t0, C).
func SliceBackward(r *gpu.Recorder, dx, dy Mem, B, T, C, t0, t1 int64, accumulate bool) error {
	op := fmt.Sprintf("slice_backward %dx%dx%d [%d:%d]", B, T, C, t0, t1)
	if err := sliceCheck(op, dx, dy, B, T, C, t0, t1); err != nil {
		return err
	}
	if !accumulate {
		// Zero the parts outside the slice; the copy below writes the rest.
		for _, part := range [][2]int64{{0, t0}, {t1, T}} {
			if part[1] > part[0] {
				sh, ys := seq3(B, part[1]-part[0], C, T)
				if err := stridedCopy(r, op, dx.At(part[0]*C), ys, Mem{}, ys, sh, false, true); err != nil {
					return err
				}
			}
		}
	}
	sh, ys := seq3(B, t1-t0, C, T)
	_, xs := seq3(B, t1-t0, C, t1-t0)
	return stridedCopy(r, op, dx.At(t0*C), ys, dy, xs, sh, accumulate, false)
}

// headsShape is the (B, T, H, D) index space of a head split with the
// strides of the (B, T, H·D) layout and of the (B, H, T, D) layout.
func headsShape(B, T, H, D int64) (shape, seqStrides, headStrides [4]int64) {
	return [4]int64{B, T, H, D}, [4]int64{T * H * D, H * D, D, 1}, [4]int64{H * T * D, D, T * D, 1}
}

func headsCopy(r *gpu.Recorder, name string, toHeads bool, y, x Mem, B, T, H, D int64, accumulate bool) error {
	op := fmt.Sprintf("%s B=%d T=%d H=%d D=%d", name, B, T, H, D)
	if err := arDims(op, B, T, H, D); err != nil {
		return err
	}
	if _, err := arCheck(op, arOperand{"y", y, B * T * H * D}, arOperand{"x", x, B * T * H * D}); err != nil {
		return err
	}
	sh, seq, heads := headsShape(B, T, H, D)
	if toHeads {
		return stridedCopy(r, op, y, heads, x, seq, sh, accumulate, false)
	}
	return stridedCopy(r, op, y, seq, x, heads, sh, accumulate, false)
}

// SplitHeads sets y[b, h, t, d] = x[b, t, h·D + d]: x is (B, T, H·D), y is
// (B, H, T, D).
func SplitHeads(r *gpu.Recorder, y, x Mem, B, T, H, D int64) error {
	return headsCopy(r, "split_heads", true, y, x, B, T, H, D, false)
}

// SplitHeadsBackward merges dy (B, H, T, D) back into dx (B, T, H·D),
// adding with accumulate.
func SplitHeadsBackward(r *gpu.Recorder, dx, dy Mem, B, T, H, D int64, accumulate bool) error {
	return headsCopy(r, "split_heads_backward", false, dx, dy, B, T, H, D, accumulate)
}

// MergeHeads sets y[b, t, h·D + d] = x[b, h, t, d]: x is (B, H, T, D), y is
// (B, T, H·D).
func MergeHeads(r *gpu.Recorder, y, x Mem, B, H, T, D int64) error {
	return headsCopy(r, "merge_heads", false, y, x, B, T, H, D, false)
}

// MergeHeadsBackward splits dy (B, T, H·D) back into dx (B, H, T, D),
// adding with accumulate.
func MergeHeadsBackward(r *gpu.Recorder, dx, dy Mem, B, H, T, D int64, accumulate bool) error {
	return headsCopy(r, "merge_heads_backward", true, dx, dy, B, T, H, D, accumulate)
}

// Transpose2D sets y[b, j, i] = x[b, i, j]: x is (batch, rows, cols), y is
// (batch, cols, rows).
func Transpose2D(r *gpu.Recorder, y, x Mem, batch, rows, cols int64) error {
	op := fmt.Sprintf("transpose %dx%dx%d", batch, rows, cols)
	return transpose(r, op, y, x, batch, rows, cols, false)
}

// Transpose2DBackward sets dx[b, i, j] = dy[b, j, i] (adds with
// accumulate): dx is (batch, rows, cols), dy is (batch, cols, rows).
func Transpose2DBackward(r *gpu.Recorder, dx, dy Mem, batch, rows, cols int64, accumulate bool) error {
	op := fmt.Sprintf("transpose_backward %dx%dx%d", batch, rows, cols)
	return transpose(r, op, dx, dy, batch, cols, rows, accumulate)
}

// transpose writes y (batch, cols, rows) from x (batch, rows, cols).
func transpose(r *gpu.Recorder, op string, y, x Mem, batch, rows, cols int64, accumulate bool) error {
	if err := arDims(op, batch, rows, cols); err != nil {
		return err
	}
	if _, err := arCheck(op, arOperand{"y", y, batch * rows * cols}, arOperand{"x", x, batch * rows * cols}); err != nil {
		return err
	}
	shape := [4]int64{1, batch, cols, rows}
	xs := [4]int64{0, rows * cols, 1, cols}
	return stridedCopy(r, op, y, Contiguous(shape), x, xs, shape, accumulate, false)
}

// Float64 references.

// StridedCopyRef is the reference of StridedCopy.
func StridedCopyRef(y []float64, ys [4]int64, x []float64, xs [4]int64, shape [4]int64, accumulate bool) {
	for i0 := int64(0); i0 < shape[0]; i0++ {
		for i1 := int64(0); i1 < shape[1]; i1++ {
			for i2 := int64(0); i2 < shape[2]; i2++ {
				for i3 := int64(0); i3 < shape[3]; i3++ {
					v := x[i0*xs[0]+i1*xs[1]+i2*xs[2]+i3*xs[3]]
					at := i0*ys[0] + i1*ys[1] + i2*ys[2] + i3*ys[3]
					if accumulate {
						v += y[at]
					}
					y[at] = v
				}
			}
		}
	}
}

// ConcatRef returns [a; b] along the sequence axis: (B, Ta+Tb, C).
func ConcatRef(a, b []float64, B, Ta, Tb, C int) []float64 {
	y := make([]float64, 0, B*(Ta+Tb)*C)
	for i := 0; i < B; i++ {
		y = append(y, a[i*Ta*C:(i+1)*Ta*C]...)
		y = append(y, b[i*Tb*C:(i+1)*Tb*C]...)
	}
	return y
}

// SliceRef returns x[:, t0:t1, :] of a (B, T, C) x.
func SliceRef(x []float64, B, T, C, t0, t1 int) []float64 {
	y := make([]float64, 0, B*(t1-t0)*C)
	for i := 0; i < B; i++ {
		y = append(y, x[(i*T+t0)*C:(i*T+t1)*C]...)
	}
	return y
}

// SplitHeadsRef returns y (B, H, T, D) with y[b, h, t, d] = x[b, t, h·D+d].
func SplitHeadsRef(x []float64, B, T, H, D int) []float64 {
	y := make([]float64, len(x))
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			for h := 0; h < H; h++ {
				for d := 0; d < D; d++ {
					y[((b*H+h)*T+t)*D+d] = x[((b*T+t)*H+h)*D+d]
				}
			}
		}
	}
	return y
}

// MergeHeadsRef returns y (B, T, H·D) with y[b, t, h·D+d] = x[b, h, t, d].
func MergeHeadsRef(x []float64, B, H, T, D int) []float64 {
	y := make([]float64, len(x))
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			for h := 0; h < H; h++ {
				for d := 0; d < D; d++ {
					y[((b*T+t)*H+h)*D+d] = x[((b*H+h)*T+t)*D+d]
				}
			}
		}
	}
	return y
}

// TransposeRef returns y (batch, cols, rows) with y[b, j, i] = x[b, i, j].
func TransposeRef(x []float64, batch, rows, cols int) []float64 {
	y := make([]float64, len(x))
	for b := 0; b < batch; b++ {
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				y[(b*cols+j)*rows+i] = x[(b*rows+i)*cols+j]
			}
		}
	}
	return y
}

// ConcatBackwardRef splits dy (B, Ta+Tb, C) into da (B, Ta, C) and db
// (B, Tb, C).
func ConcatBackwardRef(dy []float64, B, Ta, Tb, C int) (da, db []float64) {
	return SliceRef(dy, B, Ta+Tb, C, 0, Ta), SliceRef(dy, B, Ta+Tb, C, Ta, Ta+Tb)
}

// SliceBackwardRef returns dx (B, T, C): dy in [:, t0:t1, :], 0 elsewhere.
func SliceBackwardRef(dy []float64, B, T, C, t0, t1 int) []float64 {
	dx := make([]float64, B*T*C)
	for i := 0; i < B; i++ {
		copy(dx[(i*T+t0)*C:(i*T+t1)*C], dy[i*(t1-t0)*C:(i+1)*(t1-t0)*C])
	}
	return dx
}

// Benchmarks: T5-large attention's head split and merge (8 × 406 tokens,
// 16 heads × 64), the prompt concat (8 × (150 + 256) × 1024) and a
// transpose of the activations.

func init() {
	heads := func(name string, split bool) {
		registerBench(BenchOp{Name: name, Shapes: []string{"8x406x16x64"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				v, err := ParseShape(shape, 4)
				if err != nil {
					return nil, err
				}
				B, T, H, D := int64(v[0]), int64(v[1]), int64(v[2]), int64(v[3])
				n := B * T * H * D
				bufs, free, err := benchBuffers(d, n, n)
				if err != nil {
					return nil, err
				}
				y, x := Whole(bufs[0]), Whole(bufs[1])
				rec := func(r *gpu.Recorder) error { return SplitHeads(r, y, x, B, T, H, D) }
				if !split {
					rec = func(r *gpu.Recorder) error { return MergeHeads(r, y, x, B, H, T, D) }
				}
				return &BenchCase{Op: name, Shape: shape, Bytes: 8 * float64(n), Record: rec, Free: free}, nil
			}})
	}
	heads("split_heads", true)
	heads("merge_heads", false)
	registerBench(BenchOp{Name: "concat", Shapes: []string{"8x150x256x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			v, err := ParseShape(shape, 4)
			if err != nil {
				return nil, err
			}
			B, Ta, Tb, C := int64(v[0]), int64(v[1]), int64(v[2]), int64(v[3])
			bufs, free, err := benchBuffers(d, B*(Ta+Tb)*C, B*Ta*C, B*Tb*C)
			if err != nil {
				return nil, err
			}
			y, a, b := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
			return &BenchCase{Op: "concat", Shape: shape, Bytes: 8 * float64(B*(Ta+Tb)*C),
				Record: func(r *gpu.Recorder) error { return Concat(r, y, a, b, B, Ta, Tb, C) }, Free: free}, nil
		}})
	registerBench(BenchOp{Name: "transpose", Shapes: []string{"1x3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			v, err := ParseShape(shape, 3)
			if err != nil {
				return nil, err
			}
			batch, rows, cols := int64(v[0]), int64(v[1]), int64(v[2])
			n := batch * rows * cols
			bufs, free, err := benchBuffers(d, n, n)
			if err != nil {
				return nil, err
			}
			y, x := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "transpose", Shape: shape, Bytes: 8 * float64(n),
				Record: func(r *gpu.Recorder) error { return Transpose2D(r, y, x, batch, rows, cols) }, Free: free}, nil
		}})
}
