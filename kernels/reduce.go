package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Reductions over one axis of a tensor viewed as (outer, axis, inner): sum,
// mean and max (with the arg-max saved as int32 indices), max-pooling over
// the sequence axis of (B, T, C) with an optional mask, cosine similarity
// along the last axis, and the sum of squares of an array. Every reduction
// runs in a fixed order (see shaders/reduce.glsl): the results are the same
// on every run on a given device.

var (
	reduceRowsKernel4   = kernel("reduce_rows", 8, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadWrite)
	reduceRowsKernel1   = kernel("reduce_rows", 8, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
	reduceColsKernel4   = kernel("reduce_cols", 10, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
	reduceColsKernel1   = kernel("reduce_cols", 10, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
	reduceBcastKernel1  = kernel("reduce_bcast", 10, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)       // MODE 0, 2
	reduceBcastKernel4  = kernel("reduce_bcast", 10, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite) // MODE 1
	reduceBcastKernelR4 = kernel("reduce_bcast", 10, gpu.TexelR32F, gpu.TexelRGBA32F, gpu.ReadWrite)    // MODE 3
	reduceScatterKernel = kernel("reduce_scatter", 7, gpu.TexelR32F, gpu.ReadOnly, gpu.ReadWrite)
	cosineKernel4       = kernel("reduce_cosine", 6, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite)
	cosineKernel1       = kernel("reduce_cosine", 6, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)
	cosineBwdKernel4    = kernel("reduce_cosine_bwd", 9, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
	cosineBwdKernel1    = kernel("reduce_cosine_bwd", 9, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
)

// The OP specialization constant of shaders/reduce_rows.comp and
// reduce_cols.comp.
const (
	reduceSum   = 0 // scale · Σ x
	reduceMax   = 1 // max x and its first index
	reduceSumSq = 2 // scale · Σ x² (rows only)
	reduceDot   = 3 // scale · Σ x·x2
)

// CosineEps is the ε of Cosine, torch.nn.functional.cosine_similarity's
// default.
const CosineEps = 1e-8

// reduceShapesForTest, when set, replaces the workgroup shapes that
// reduceWG and colsWG pick, so that tests run the multi-subgroup and
// shared-memory paths of the shaders on a device whose own choice avoids
// them (lavapipe).
var reduceShapesForTest *struct{ wg, wx, wy uint32 }

// reduceWG is the workgroup size of the row-per-workgroup shaders
// (reduce_rows, reduce_cosine, xent_*): a multiple of the largest subgroup
// size the device may use. On lavapipe a workgroup runs on one CPU thread
// and barriers are costly, so one subgroup does the whole row without any;
// elsewhere 256 invocations share it.
func reduceWG(d *gpu.Device) uint32 {
	if o := reduceShapesForTest; o != nil {
		return o.wg
	}
	info := d.Info()
	sg := info.MaxSubgroupSize
	if info.SubgroupSize > sg {
		sg = info.SubgroupSize
	}
	if sg == 0 {
		sg = 1
	}
	if info.IsLavapipe() {
		return sg
	}
	wg := uint32(256)
	if wg < sg {
		wg = sg
	}
	if max := info.MaxWorkgroupInvocations; wg > max && max >= sg {
		wg = max / sg * sg
	}
	return wg
}

// colsWG is the (WX, WY) workgroup of reduce_cols: one invocation per
// column (group of four columns), WY invocations sharing the axis. On
// lavapipe WY = 1 keeps the shader free of shared memory and barriers.
func colsWG(d *gpu.Device) (uint32, uint32) {
	if o := reduceShapesForTest; o != nil {
		return o.wx, o.wy
	}
	info := d.Info()
	if info.IsLavapipe() {
		return 8, 1
	}
	if info.MaxWorkgroupInvocations >= 256 {
		return 32, 8
	}
	return 32, 1
}

// arRowGrid covers rows workgroups on a 2-D grid (row = x + y·numX).
func arRowGrid(d *gpu.Device, rows int64) [3]uint32 {
	maxX := int64(d.Info().MaxWorkgroupCount[0])
	if rows <= maxX {
		return [3]uint32{uint32(rows), 1, 1}
	}
	y := (rows + maxX - 1) / maxX
	return [3]uint32{uint32((rows + y - 1) / y), uint32(y), 1}
}

// redSlabs splits an (outer, axis, inner) array into pieces whose elements
// fit in limit and whose runs along the axis are at most maxRun long: whole
// outer slices when they qualify, else runs of the axis inside one outer
// slice. f gets the piece's first outer index and count, and its first axis
// index and count.
func redSlabs(op string, outer, axis, inner, limit, maxRun int64, f func(o0, no, a0, na int64) error) error {
	if inner > limit {
		return fmt.Errorf("%s: inner dimension %d exceeds the %d elements one binding may hold", op, inner, limit)
	}
	if slice := axis * inner; slice <= limit && axis <= maxRun {
		per := limit / slice
		for o0 := int64(0); o0 < outer; o0 += per {
			if err := f(o0, min(per, outer-o0), 0, axis); err != nil {
				return err
			}
		}
		return nil
	}
	per := min(limit/inner, maxRun)
	for o0 := int64(0); o0 < outer; o0++ {
		for a0 := int64(0); a0 < axis; a0 += per {
			if err := f(o0, 1, a0, min(per, axis-a0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// arLoopCap is the most iterations a shader loop may run per invocation.
// lavapipe (Mesa 22.3, measured) stops every loop of an invocation once their
// iterations add up to 65535 (a guard against infinite loops), silently:
// kernels keep each loop at most this long, so that a few loops together
// stay below the guard, and split longer work into pieces.
func arLoopCap(d *gpu.Device) int64 {
	if info := d.Info(); info.IsLavapipe() {
		return 16384
	}
	return 1 << 40
}

// reduceArgs describes one reduction: y (outer, inner) from x (outer, axis,
// inner), x2 the second factor of reduceDot, idx (outer, inner) the arg-max
// of reduceMax, mask (outer, axis) optional for the column variant.
type reduceArgs struct {
	op                  string
	kind                uint32
	y, idx, x, x2, mask Mem
	outer, axis, inner  int64
	scale               float32
	acc                 bool
}

// reduceAxis records a validated reduction: the row shader when the reduced
// axis is the last one (inner = 1) and there is no mask, the column shader
// otherwise.
func reduceAxis(r *gpu.Recorder, d *gpu.Device, a reduceArgs) error {
	if a.inner == 1 && a.mask.Buf == nil {
		return reduceRows(r, d, a)
	}
	return reduceCols(r, d, a)
}

func reduceRows(r *gpu.Recorder, d *gpu.Device, a reduceArgs) error {
	offs := []int64{a.x.Off}
	if a.kind == reduceDot {
		offs = append(offs, a.x2.Off)
	}
	vec4 := a.axis%4 == 0 && arAligned4(offs...)
	k, texel := reduceRowsKernel1, int64(1)
	if vec4 {
		k, texel = reduceRowsKernel4, 4
	}
	wg := reduceWG(d)
	p, err := pipeline(d, a.op, k, wg, arFlag(vec4), a.kind)
	if err != nil {
		return err
	}
	maxRun := int64(wg) * texel * arLoopCap(d)
	return redSlabs(a.op, a.outer, a.axis, 1, arBindElems(d), maxRun, func(o0, no, a0, na int64) error {
		if a0 > 0 && a.kind == reduceMax {
			return fmt.Errorf("%s: rows of %d elements are longer than this device can reduce in one piece", a.op, a.axis)
		}
		start := o0*a.axis + a0
		xb, xo := texelSpan(d, a.x.At(start), no*na, texel)
		x2b, x2o := xb, xo
		if a.kind == reduceDot {
			x2b, x2o = texelSpan(d, a.x2.At(start), no*na, texel)
		}
		yb, yo := span(d, a.y.At(o0), no)
		ib, io := yb, yo
		if a.kind == reduceMax {
			ib, io = span(d, a.idx.At(o0), no)
		}
		if vec4 {
			if err := arShifts4(a.op, xo, x2o); err != nil {
				return err
			}
		}
		acc := a.acc || a0 > 0
		push := []uint32{uint32(no), uint32(na), xo, x2o, yo, io, f32(a.scale), arFlag(acc)}
		return r.Dispatch(p, arRowGrid(d, no), push, xb, x2b, yb, ib)
	})
}

func reduceCols(r *gpu.Recorder, d *gpu.Device, a reduceArgs) error {
	offs := []int64{a.x.Off, a.y.Off}
	if a.kind == reduceDot {
		offs = append(offs, a.x2.Off)
	}
	if a.kind == reduceMax {
		offs = append(offs, a.idx.Off)
	}
	vec4 := a.inner%4 == 0 && arAligned4(offs...)
	k, texel := reduceColsKernel1, int64(1)
	if vec4 {
		k, texel = reduceColsKernel4, 4
	}
	wx, wy := colsWG(d)
	hasMask := a.mask.Buf != nil
	p, err := pipeline(d, a.op, k, wx, wy, arFlag(vec4), a.kind, arFlag(hasMask))
	if err != nil {
		return err
	}
	ncols := a.inner
	if vec4 {
		ncols /= 4
	}
	blocks := (ncols + int64(wx) - 1) / int64(wx)
	maxCount := d.Info().MaxWorkgroupCount
	if blocks > int64(maxCount[0]) {
		return fmt.Errorf("%s: inner dimension %d needs %d workgroups; the device allows %d", a.op, a.inner, blocks, maxCount[0])
	}
	return redSlabs(a.op, a.outer, a.axis, a.inner, arBindElems(d), int64(wy)*arLoopCap(d), func(o0, no, a0, na int64) error {
		if a0 > 0 && a.kind == reduceMax {
			return fmt.Errorf("%s: slices of %dx%d elements are larger than this device can reduce in one piece", a.op, a.axis, a.inner)
		}
		start := (o0*a.axis + a0) * a.inner
		xb, xo := texelSpan(d, a.x.At(start), no*na*a.inner, texel)
		x2b, x2o := xb, xo
		if a.kind == reduceDot {
			x2b, x2o = texelSpan(d, a.x2.At(start), no*na*a.inner, texel)
		}
		mb, mo := texelSpan(d, a.x.At(start), 1, 1)
		if hasMask {
			mb, mo = texelSpan(d, a.mask.At(o0*a.axis+a0), no*na, 1)
		}
		yb, yo := span(d, a.y.At(o0*a.inner), no*a.inner)
		ib, io := yb, yo
		if a.kind == reduceMax {
			ib, io = span(d, a.idx.At(o0*a.inner), no*a.inner)
		}
		if vec4 {
			if err := arShifts4(a.op, xo, x2o, yo, io); err != nil {
				return err
			}
		}
		acc := a.acc || a0 > 0
		push := []uint32{uint32(no), uint32(na), uint32(a.inner), xo, x2o, mo, yo, io, f32(a.scale), arFlag(acc)}
		gy, gz := no, int64(1)
		if maxY := int64(maxCount[1]); gy > maxY {
			gz = (no + maxY - 1) / maxY
			gy = (no + gz - 1) / gz
		}
		return r.Dispatch(p, [3]uint32{uint32(blocks), uint32(gy), uint32(gz)}, push, xb, x2b, mb, yb, ib)
	})
}

// axisOp names an axis reduction with its shape in errors.
func axisOp(name string, outer, axis, inner int64) string {
	return fmt.Sprintf("%s (outer %d, axis %d, inner %d)", name, outer, axis, inner)
}

func sumLike(r *gpu.Recorder, name string, y, x Mem, outer, axis, inner int64, mean bool) error {
	op := axisOp(name, outer, axis, inner)
	if err := arDims(op, outer, axis, inner); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"y", y, outer * inner}, arOperand{"x", x, outer * axis * inner})
	if err != nil {
		return err
	}
	scale := float32(1)
	if mean {
		scale = float32(1 / float64(axis))
	}
	return reduceAxis(r, d, reduceArgs{op: op, kind: reduceSum, y: y, x: x, outer: outer, axis: axis, inner: inner, scale: scale})
}

// Sum sets y[o, i] = Σ_a x[o, a, i]. x is (outer, axis, inner), y is
// (outer, inner).
func Sum(r *gpu.Recorder, y, x Mem, outer, axis, inner int64) error {
	return sumLike(r, "sum", y, x, outer, axis, inner, false)
}

// Mean sets y[o, i] = Σ_a x[o, a, i] / axis. x is (outer, axis, inner), y is
// (outer, inner).
func Mean(r *gpu.Recorder, y, x Mem, outer, axis, inner int64) error {
	return sumLike(r, "mean", y, x, outer, axis, inner, true)
}

// Max sets y[o, i] = max_a x[o, a, i] and idx[o, i] to the first a holding
// it. x is (outer, axis, inner), y is (outer, inner) and idx (outer, inner)
// int32. NaN inputs give unspecified results.
func Max(r *gpu.Recorder, y, idx, x Mem, outer, axis, inner int64) error {
	op := axisOp("max", outer, axis, inner)
	if err := arDims(op, outer, axis, inner); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"y", y, outer * inner}, arOperand{"idx", idx, outer * inner},
		arOperand{"x", x, outer * axis * inner})
	if err != nil {
		return err
	}
	return reduceAxis(r, d, reduceArgs{op: op, kind: reduceMax, y: y, idx: idx, x: x, outer: outer, axis: axis, inner: inner, scale: 1})
}

func sumLikeBackward(r *gpu.Recorder, name string, dx, dy Mem, outer, axis, inner int64, scale float32, accumulate bool) error {
	op := axisOp(name, outer, axis, inner)
	if err := arDims(op, outer, axis, inner); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"dx", dx, outer * axis * inner}, arOperand{"dy", dy, outer * inner})
	if err != nil {
		return err
	}
	// The shader's MODE: see shaders/reduce_bcast.comp.
	mode, k, dyTexel, dxTexel := uint32(0), reduceBcastKernel1, int64(1), int64(1)
	switch {
	case inner == 1 && axis%4 == 0 && dx.Off%4 == 0:
		mode, k, dxTexel = 3, reduceBcastKernelR4, 4
	case inner == 1:
		mode = 2
	case inner%4 == 0 && arAligned4(dx.Off, dy.Off):
		mode, k, dyTexel, dxTexel = 1, reduceBcastKernel4, 4, 4
	}
	p, err := pipeline(d, op, k, mode)
	if err != nil {
		return err
	}
	maxY := int64(d.Info().MaxWorkgroupCount[1])
	return redSlabs(op, outer, axis, inner, arBindElems(d), axis, func(o0, no, a0, na int64) error {
		start := (o0*axis + a0) * inner
		slice := na * inner
		dyb, dyo := texelSpan(d, dy.At(o0*inner), no*inner, dyTexel)
		dxb, dxo := span(d, dx.At(start), no*slice)
		inb, ino := texelSpan(d, dx.At(start), 1, dxTexel)
		if accumulate {
			inb, ino = texelSpan(d, dx.At(start), no*slice, dxTexel)
		}
		if dxTexel == 4 {
			if err := arShifts4(op, dxo, ino); err != nil {
				return err
			}
		}
		if dyTexel == 4 {
			if err := arShifts4(op, dyo); err != nil {
				return err
			}
		}
		im, ish := arMagic(uint32(inner))
		push := []uint32{uint32(no), uint32(slice), uint32(inner), im, ish, dyo, ino, dxo, f32(scale), arFlag(accumulate)}
		gy, gz := no, int64(1)
		if gy > maxY {
			gz = (no + maxY - 1) / maxY
			gy = (no + gz - 1) / gz
		}
		gx := (slice + 4*256 - 1) / (4 * 256)
		return r.Dispatch(p, [3]uint32{uint32(gx), uint32(gy), uint32(gz)}, push, dyb, inb, dxb)
	})
}

// SumBackward sets dx[o, a, i] = dy[o, i] (adds with accumulate): the
// backward of Sum. dx is (outer, axis, inner), dy is (outer, inner).
func SumBackward(r *gpu.Recorder, dx, dy Mem, outer, axis, inner int64, accumulate bool) error {
	return sumLikeBackward(r, "sum_backward", dx, dy, outer, axis, inner, 1, accumulate)
}

// MeanBackward sets dx[o, a, i] = dy[o, i] / axis (adds with accumulate):
// the backward of Mean. dx is (outer, axis, inner), dy is (outer, inner).
func MeanBackward(r *gpu.Recorder, dx, dy Mem, outer, axis, inner int64, accumulate bool) error {
	if axis <= 0 {
		return arDims(axisOp("mean_backward", outer, axis, inner), axis)
	}
	return sumLikeBackward(r, "mean_backward", dx, dy, outer, axis, inner, float32(1/float64(axis)), accumulate)
}

// scatterMax records dx[o, idx[o, i], i] += dy[o, i] after zeroing dx unless
// accumulating. Negative indices are skipped.
func scatterMax(r *gpu.Recorder, d *gpu.Device, op string, dx, dy, idx Mem, outer, axis, inner int64, accumulate bool) error {
	if !accumulate {
		if err := Fill(r, dx, outer*axis*inner, 0); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	p, err := pipeline(d, op, reduceScatterKernel)
	if err != nil {
		return err
	}
	return redSlabs(op, outer, axis, inner, arBindElems(d), axis, func(o0, no, a0, na int64) error {
		dyb, dyo := texelSpan(d, dy.At(o0*inner), no*inner, 1)
		ib, io := span(d, idx.At(o0*inner), no*inner)
		dxb, dxo := span(d, dx.At((o0*axis+a0)*inner), no*na*inner)
		push := []uint32{uint32(no * inner), uint32(na), uint32(inner), dyo, io, dxo, uint32(a0)}
		return r.Dispatch(p, grid1D(d, no*inner), push, dyb, ib, dxb)
	})
}

// MaxBackward routes dy to the arg-max saved by Max: dx[o, idx[o, i], i] =
// dy[o, i] and 0 elsewhere (adds with accumulate). dx is (outer, axis,
// inner), dy and idx are (outer, inner).
func MaxBackward(r *gpu.Recorder, dx, dy, idx Mem, outer, axis, inner int64, accumulate bool) error {
	op := axisOp("max_backward", outer, axis, inner)
	if err := arDims(op, outer, axis, inner); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"dx", dx, outer * axis * inner}, arOperand{"dy", dy, outer * inner},
		arOperand{"idx", idx, outer * inner})
	if err != nil {
		return err
	}
	return scatterMax(r, d, op, dx, dy, idx, outer, axis, inner, accumulate)
}

// MaxPool max-pools over the sequence: y[b, c] = max over t with
// mask[b, t] != 0 of x[b, t, c], idx[b, c] the first such t. x is (B, T, C),
// mask is (B, T) of 0/1 or nil (no masking), y and idx (int32) are (B, C). A
// row whose positions are all masked gets y = 0 and idx = -1 (and no
// gradient).
func MaxPool(r *gpu.Recorder, y, idx, x, mask Mem, B, T, C int64) error {
	op := fmt.Sprintf("max_pool %dx%dx%d", B, T, C)
	if err := arDims(op, B, T, C); err != nil {
		return err
	}
	ops := []arOperand{{"y", y, B * C}, {"idx", idx, B * C}, {"x", x, B * T * C}}
	if mask.Buf != nil {
		ops = append(ops, arOperand{"mask", mask, B * T})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	return reduceCols(r, d, reduceArgs{op: op, kind: reduceMax, y: y, idx: idx, x: x, mask: mask,
		outer: B, axis: T, inner: C, scale: 1})
}

// MaxPoolBackward sets dx[b, idx[b, c], c] = dy[b, c] and 0 elsewhere (adds
// with accumulate); columns with idx = -1 get no gradient. dx is (B, T, C),
// dy and idx are (B, C).
func MaxPoolBackward(r *gpu.Recorder, dx, dy, idx Mem, B, T, C int64, accumulate bool) error {
	op := fmt.Sprintf("max_pool_backward %dx%dx%d", B, T, C)
	if err := arDims(op, B, T, C); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"dx", dx, B * T * C}, arOperand{"dy", dy, B * C}, arOperand{"idx", idx, B * C})
	if err != nil {
		return err
	}
	return scatterMax(r, d, op, dx, dy, idx, B, T, C, accumulate)
}

// Cosine sets y[r] = a[r]·b[r] / (max(‖a[r]‖, ε)·max(‖b[r]‖, ε)) with
// ε = CosineEps. a and b are (n, C), y is (n,). This is the formula of
// torch.nn.functional.cosine_similarity since torch 1.12 (each norm clamped
// separately), not the older max(‖a‖·‖b‖, ε).
func Cosine(r *gpu.Recorder, y, a, b Mem, n, C int64) error {
	op := fmt.Sprintf("cosine %dx%d", n, C)
	if err := arDims(op, n, C); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"y", y, n}, arOperand{"a", a, n * C}, arOperand{"b", b, n * C})
	if err != nil {
		return err
	}
	vec4 := C%4 == 0 && arAligned4(a.Off, b.Off)
	k, texel := cosineKernel1, int64(1)
	if vec4 {
		k, texel = cosineKernel4, 4
	}
	p, err := pipeline(d, op, k, reduceWG(d), arFlag(vec4))
	if err != nil {
		return err
	}
	return redSlabs(op, n, C, 1, arBindElems(d), int64(reduceWG(d))*texel*arLoopCap(d), func(o0, no, a0, na int64) error {
		if a0 > 0 {
			return fmt.Errorf("%s: rows of %d elements are longer than this device can reduce in one piece", op, C)
		}
		ab, ao := texelSpan(d, a.At(o0*C), no*C, texel)
		bb, bo := texelSpan(d, b.At(o0*C), no*C, texel)
		yb, yo := span(d, y.At(o0), no)
		if vec4 {
			if err := arShifts4(op, ao, bo); err != nil {
				return err
			}
		}
		push := []uint32{uint32(no), uint32(C), ao, bo, yo, f32(CosineEps)}
		return r.Dispatch(p, arRowGrid(d, no), push, ab, bb, yb)
	})
}

// CosineBackward sets da and db (adds with accumulate) for y = Cosine(a, b)
// and upstream gradient dy: with na = ‖a‖, n1 = max(na, ε), n2 likewise,
// da = dy·(b/(n1·n2) − y·a/n1²), the last term only where na ≥ ε (below it
// the clamped norm is a constant). torch's autograd differs only there: it
// passes the norm's gradient through its in-place clamp. a, b, da and db
// are (n, C), dy is (n,); a nil da or db is not computed.
func CosineBackward(r *gpu.Recorder, da, db, dy, a, b Mem, n, C int64, accumulate bool) error {
	op := fmt.Sprintf("cosine_backward %dx%d", n, C)
	if err := arDims(op, n, C); err != nil {
		return err
	}
	ops := []arOperand{{"dy", dy, n}, {"a", a, n * C}, {"b", b, n * C}}
	if da.Buf != nil {
		ops = append(ops, arOperand{"da", da, n * C})
	}
	if db.Buf != nil {
		ops = append(ops, arOperand{"db", db, n * C})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	if da.Buf == nil && db.Buf == nil {
		return nil
	}
	offs := []int64{a.Off, b.Off}
	for _, g := range []Mem{da, db} {
		if g.Buf != nil {
			offs = append(offs, g.Off)
		}
	}
	vec4 := C%4 == 0 && arAligned4(offs...)
	k, texel := cosineBwdKernel1, int64(1)
	if vec4 {
		k, texel = cosineBwdKernel4, 4
	}
	p, err := pipeline(d, op, k, reduceWG(d), arFlag(vec4))
	if err != nil {
		return err
	}
	flags := 4 * arFlag(accumulate)
	if da.Buf != nil {
		flags |= 1
	}
	if db.Buf != nil {
		flags |= 2
	}
	return redSlabs(op, n, C, 1, arBindElems(d), int64(reduceWG(d))*texel*arLoopCap(d), func(o0, no, a0, na int64) error {
		if a0 > 0 {
			return fmt.Errorf("%s: rows of %d elements are longer than this device can reduce in one piece", op, C)
		}
		ab, ao := texelSpan(d, a.At(o0*C), no*C, texel)
		bb, bo := texelSpan(d, b.At(o0*C), no*C, texel)
		dyb, dyo := texelSpan(d, dy.At(o0), no, 1)
		// A gradient not requested is bound to the other one: never written.
		ga, gb := da, db
		if ga.Buf == nil {
			ga = gb
		}
		if gb.Buf == nil {
			gb = ga
		}
		dab, dao := span(d, ga.At(o0*C), no*C)
		dbb, dbo := span(d, gb.At(o0*C), no*C)
		if vec4 {
			if err := arShifts4(op, ao, bo, dao, dbo); err != nil {
				return err
			}
		}
		push := []uint32{uint32(no), uint32(C), ao, bo, dyo, dao, dbo, f32(CosineEps), flags}
		return r.Dispatch(p, arRowGrid(d, no), push, ab, bb, dyb, dab, dbb)
	})
}

// SumSquares sets y[0] = Σ_i x[i]², the squared norm of x (n,).
func SumSquares(r *gpu.Recorder, y, x Mem, n int64) error {
	op := fmt.Sprintf("sum_squares %d", n)
	if err := arDims(op, n); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"y", y, 1}, arOperand{"x", x, n})
	if err != nil {
		return err
	}
	return reduceRows(r, d, reduceArgs{op: op, kind: reduceSumSq, y: y, x: x, outer: 1, axis: n, inner: 1, scale: 1})
}

// Float64 references.

// SumRef sets y[o, i] = scale·Σ_a x[o, a, i] (scale 1 for sum, 1/axis for
// mean).
func SumRef(y, x []float64, outer, axis, inner int, scale float64) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			s := 0.0
			for a := 0; a < axis; a++ {
				s += x[(o*axis+a)*inner+i]
			}
			y[o*inner+i] = scale * s
		}
	}
}

// SumBackwardRef sets dx[o, a, i] = scale·dy[o, i].
func SumBackwardRef(dx, dy []float64, outer, axis, inner int, scale float64) {
	for o := 0; o < outer; o++ {
		for a := 0; a < axis; a++ {
			for i := 0; i < inner; i++ {
				dx[(o*axis+a)*inner+i] = scale * dy[o*inner+i]
			}
		}
	}
}

// MaxPoolRef is the reference of Max (mask nil) and MaxPool: y[o, i] is the
// max over a with mask[o, a] != 0 of x[o, a, i], idx the first such a; a
// column with every position masked gets 0 and -1.
func MaxPoolRef(y []float64, idx []int32, x, mask []float64, outer, axis, inner int) {
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			best, at := 0.0, int32(-1)
			for a := 0; a < axis; a++ {
				if mask != nil && mask[o*axis+a] == 0 {
					continue
				}
				if v := x[(o*axis+a)*inner+i]; at < 0 || v > best {
					best, at = v, int32(a)
				}
			}
			y[o*inner+i], idx[o*inner+i] = best, at
		}
	}
}

// MaxBackwardRef sets dx[o, idx[o, i], i] = dy[o, i] and 0 elsewhere.
func MaxBackwardRef(dx, dy []float64, idx []int32, outer, axis, inner int) {
	clear(dx)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			if a := idx[o*inner+i]; a >= 0 {
				dx[(o*axis+int(a))*inner+i] += dy[o*inner+i]
			}
		}
	}
}

// cosineParts returns a·b, ‖a‖, ‖b‖ for one row.
func cosineParts(a, b []float64) (ab, na, nb float64) {
	var aa, bb float64
	for j := range a {
		ab += a[j] * b[j]
		aa += a[j] * a[j]
		bb += b[j] * b[j]
	}
	return ab, math.Sqrt(aa), math.Sqrt(bb)
}

// CosineRef sets y[r] = a[r]·b[r] / (max(‖a[r]‖, ε)·max(‖b[r]‖, ε)) for
// (n, C) a and b, ε = CosineEps.
func CosineRef(y, a, b []float64, n, C int) {
	for r := 0; r < n; r++ {
		ab, na, nb := cosineParts(a[r*C:(r+1)*C], b[r*C:(r+1)*C])
		y[r] = ab / (max(na, CosineEps) * max(nb, CosineEps))
	}
}

// CosineBackwardRef returns the gradients of Σ_r dy[r]·CosineRef(a, b)[r].
func CosineBackwardRef(dy, a, b []float64, n, C int) (da, db []float64) {
	da, db = make([]float64, n*C), make([]float64, n*C)
	for r := 0; r < n; r++ {
		ra, rb := a[r*C:(r+1)*C], b[r*C:(r+1)*C]
		ab, na, nb := cosineParts(ra, rb)
		n1, n2 := max(na, CosineEps), max(nb, CosineEps)
		cos := ab / (n1 * n2)
		c := dy[r] / (n1 * n2)
		var ka, kb float64
		if na >= CosineEps {
			ka = dy[r] * cos / (n1 * n1)
		}
		if nb >= CosineEps {
			kb = dy[r] * cos / (n2 * n2)
		}
		for j := 0; j < C; j++ {
			da[r*C+j] = c*rb[j] - ka*ra[j]
			db[r*C+j] = c*ra[j] - kb*rb[j]
		}
	}
	return da, db
}

// SumSquaresRef returns Σ x².
func SumSquaresRef(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v * v
	}
	return s
}

// Benchmarks: T5-large activations (3248 rows × 1024) reduced along the
// last axis ("3248x1024x1") or over the rows ("1x3248x1024"), max-pooling
// of (8, 256, 1024) with a mask, and cosine similarity of (8 | 40, 1024).

func init() {
	axisCase := func(name string, f func(r *gpu.Recorder, y, idx, x Mem, outer, axis, inner int64) error) {
		registerBench(BenchOp{Name: name, Shapes: []string{"3248x1024x1", "1x3248x1024"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				v, err := ParseShape(shape, 3)
				if err != nil {
					return nil, err
				}
				outer, axis, inner := int64(v[0]), int64(v[1]), int64(v[2])
				n, m := outer*axis*inner, outer*inner
				bufs, free, err := benchBuffers(d, n, m, m)
				if err != nil {
					return nil, err
				}
				x, y, idx := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
				return &BenchCase{Op: name, Shape: shape, Bytes: 4 * float64(n+m),
					Record: func(r *gpu.Recorder) error { return f(r, y, idx, x, outer, axis, inner) }, Free: free}, nil
			}})
	}
	axisCase("sum", func(r *gpu.Recorder, y, _, x Mem, o, a, i int64) error { return Sum(r, y, x, o, a, i) })
	axisCase("max", Max)
	registerBench(BenchOp{Name: "sum_backward", Shapes: []string{"3248x1024x1", "1x3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			v, err := ParseShape(shape, 3)
			if err != nil {
				return nil, err
			}
			outer, axis, inner := int64(v[0]), int64(v[1]), int64(v[2])
			n, m := outer*axis*inner, outer*inner
			bufs, free, err := benchBuffers(d, n, m)
			if err != nil {
				return nil, err
			}
			dx, dy := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "sum_backward", Shape: shape, Bytes: 4 * float64(n+m),
				Record: func(r *gpu.Recorder) error { return SumBackward(r, dx, dy, outer, axis, inner, false) }, Free: free}, nil
		}})
	registerBench(BenchOp{Name: "max_pool", Shapes: []string{"8x256x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			v, err := ParseShape(shape, 3)
			if err != nil {
				return nil, err
			}
			B, T, C := int64(v[0]), int64(v[1]), int64(v[2])
			bufs, free, err := benchBuffers(d, B*T*C, B*T, B*C, B*C)
			if err != nil {
				return nil, err
			}
			mask := make([]float32, B*T)
			for i := range mask {
				if i%int(T) < int(T)*3/4 {
					mask[i] = 1
				}
			}
			if err := gpu.WriteSlice(bufs[1], 0, mask); err != nil {
				free()
				return nil, err
			}
			x, m, y, idx := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3])
			return &BenchCase{Op: "max_pool", Shape: shape, Bytes: 4 * float64(B*T*C+B*T+2*B*C),
				Record: func(r *gpu.Recorder) error { return MaxPool(r, y, idx, x, m, B, T, C) }, Free: free}, nil
		}})
	cos := func(name string, backward bool) {
		registerBench(BenchOp{Name: name, Shapes: []string{"8x1024", "40x1024"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				n, C, err := rowsCols(shape)
				if err != nil {
					return nil, err
				}
				bufs, free, err := benchBuffers(d, n*C, n*C, n, n*C, n*C)
				if err != nil {
					return nil, err
				}
				a, b, y, da, db := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3]), Whole(bufs[4])
				c := &BenchCase{Op: name, Shape: shape, Bytes: 4 * float64(2*n*C+n), Free: free,
					Record: func(r *gpu.Recorder) error { return Cosine(r, y, a, b, n, C) }}
				if backward {
					c.Bytes = 4 * float64(4*n*C+n)
					c.Record = func(r *gpu.Recorder) error { return CosineBackward(r, da, db, y, a, b, n, C, false) }
				}
				return c, nil
			}})
	}
	cos("cosine", false)
	cos("cosine_backward", true)
	registerBench(BenchOp{Name: "sum_squares", Shapes: []string{"206848", t5LargeActivations},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			n, err := oneDim(shape)
			if err != nil {
				return nil, err
			}
			bufs, free, err := benchBuffers(d, n, 1)
			if err != nil {
				return nil, err
			}
			x, y := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "sum_squares", Shape: shape, Bytes: 4 * float64(n),
				Record: func(r *gpu.Recorder) error { return SumSquares(r, y, x, n) }, Free: free}, nil
		}})
}
