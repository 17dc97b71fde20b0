package kernels

import (
	"fmt"
	"math/bits"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Elementwise arithmetic: add, mul, scale (by a constant or a device
// scalar), residual add, and the broadcast of a (C,) row vector over the rows
// of a (rows, C) array, with their backward passes. Inputs are read through
// texel views (RGBA32F when every offset is a multiple of 4, float texels
// otherwise) and outputs written through storage buffers, as Copy does.

var (
	arithKernel4 = kernel("arith", 12, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelR32F, gpu.TexelRGBA32F, gpu.ReadWrite) // VEC4 = 1
	arithKernel1 = kernel("arith", 12, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)          // VEC4 = 0
)

// The OP specialization constant of shaders/arith.comp.
const (
	arithAdd     = 0
	arithMul     = 1
	arithScale   = 2
	arithScaleBy = 3
)

// Helpers shared by the arith, reduce, layout, xent and adamw kernels carry
// the prefix ar.

// arBindLimitForTest, when positive, lowers the number of elements one
// binding of those kernels may span, so that tests exercise the splitting of
// large operands without allocating hundreds of MiB.
var arBindLimitForTest int64

// arBindElems is the most elements one binding may span, as a storage buffer
// or as a texel view of float texels, rounded down to a multiple of 16 so
// that pieces keep vec4 alignment.
func arBindElems(d *gpu.Device) int64 {
	n := maxElems(d)
	if t := int64(d.Info().MaxTexelBufferElements) - 16; t < n {
		n = t
	}
	if arBindLimitForTest > 0 && arBindLimitForTest < n {
		n = arBindLimitForTest
	}
	return n / 16 * 16
}

// arOperand is one array a wrapper validates: its name in errors, its view
// and the number of elements it must hold.
type arOperand struct {
	name string
	m    Mem
	n    int64
}

// arCheck validates every operand (present, not freed, large enough) and
// that all live on one device, which it returns.
func arCheck(op string, ops ...arOperand) (*gpu.Device, error) {
	var d *gpu.Device
	var first string
	for _, o := range ops {
		if err := o.m.check(op, o.name, o.n); err != nil {
			return nil, err
		}
		od := o.m.Buf.Device()
		if d == nil {
			d, first = od, o.name
		} else if od != d {
			return nil, fmt.Errorf("%s: %s is on %v but %s is on %v", op, o.name, od, first, d)
		}
	}
	return d, nil
}

// arDims returns an error naming op unless every dimension is positive.
func arDims(op string, dims ...int64) error {
	for _, v := range dims {
		if v <= 0 {
			return fmt.Errorf("%s: dimensions must be positive", op)
		}
		if v > 1<<31 {
			return fmt.Errorf("%s: dimension %d is too large", op, v)
		}
	}
	return nil
}

// arAligned4 reports whether every view offset is a multiple of 4 elements,
// which the vec4 variants need.
func arAligned4(offs ...int64) bool {
	for _, o := range offs {
		if o%4 != 0 {
			return false
		}
	}
	return true
}

// arShifts4 checks that the binding shifts of a vec4 dispatch are multiples of
// 4 (they are whenever the views' offsets are; see texelSpan).
func arShifts4(op string, shifts ...uint32) error {
	for _, s := range shifts {
		if s%4 != 0 {
			return fmt.Errorf("%s: internal: misaligned vec4 view (shift %d)", op, s)
		}
	}
	return nil
}

// arMagic returns the multiplier and packed shifts with which
// shaders/arith_div.glsl divides by d (d ≥ 1) exactly.
func arMagic(d uint32) (m, sh uint32) {
	if d == 0 {
		d = 1 // never divided by: any valid constants do
	}
	l := uint(bits.Len32(d - 1)) // ⌈log2 d⌉
	m = uint32((uint64(1)<<32)*((uint64(1)<<l)-uint64(d))/uint64(d) + 1)
	sh1, sh2 := min(l, 1), uint(0)
	if l > 1 {
		sh2 = l - 1
	}
	return m, uint32(sh1) | uint32(sh2)<<8
}

// arDivMagic is the reference of the shader's divMagic.
func arDivMagic(n, m, sh uint32) uint32 {
	hi := uint32((uint64(n) * uint64(m)) >> 32)
	return (hi + ((n - hi) >> (sh & 0xff))) >> (sh >> 8)
}

// arFlag is a boolean push constant or specialization constant.
func arFlag(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// arithArgs is one arithmetic dispatch sequence over n elements.
type arithArgs struct {
	op         string
	kind       uint32
	y, a, b, s Mem // b only for add/mul, s only for scale-by
	n          int64
	rowC       int64 // > 0: b is a (rowC,) row broadcast over (n/rowC, rowC)
	alpha      float32
	acc        bool
}

// arith records the shader over n elements in pieces that fit one binding.
func arith(r *gpu.Recorder, d *gpu.Device, x arithArgs) error {
	binary := x.kind == arithAdd || x.kind == arithMul
	offs := []int64{x.y.Off, x.a.Off}
	if binary {
		offs = append(offs, x.b.Off)
	}
	vec4 := arAligned4(offs...) && (x.rowC == 0 || x.rowC%4 == 0)
	k, texel, v4 := arithKernel1, int64(1), uint32(0)
	if vec4 {
		k, texel, v4 = arithKernel4, 4, 1
	}
	p, err := pipeline(d, x.op, k, x.kind, v4, arFlag(x.rowC > 0))
	if err != nil {
		return err
	}
	limit := arBindElems(d)
	return chunks(x.n, limit, func(lo, hi int64) error {
		n := hi - lo
		ab, ao := texelSpan(d, x.a.At(lo), n, texel)
		yb, yo := span(d, x.y.At(lo), n)
		// Unused bindings get a valid view of a.
		bb, bo := ab, ao
		col0 := int64(0)
		if binary {
			if x.rowC > 0 {
				bb, bo = texelSpan(d, x.b, x.rowC, texel)
				col0 = lo % x.rowC
			} else {
				bb, bo = texelSpan(d, x.b.At(lo), n, texel)
			}
		}
		sb, so := texelSpan(d, x.a.At(lo), 1, 1)
		if x.kind == arithScaleBy {
			sb, so = texelSpan(d, x.s, 1, 1)
		}
		yib, yio := ab, ao
		if x.acc {
			yib, yio = texelSpan(d, x.y.At(lo), n, texel)
		}
		if vec4 {
			if err := arShifts4(x.op, ao, bo, yio, yo, uint32(col0)); err != nil {
				return err
			}
		}
		cm, csh := arMagic(uint32(x.rowC))
		push := []uint32{uint32(n), ao, bo, so, yio, yo, uint32(x.rowC), cm, csh, uint32(col0), f32(x.alpha), arFlag(x.acc)}
		return r.Dispatch(p, grid1D(d, (n+3)/4), push, ab, bb, sb, yib, yb)
	})
}

// Add sets y = a + b. y, a and b are (n,); y may be a or b (in place).
func Add(r *gpu.Recorder, y, a, b Mem, n int64) error {
	const op = "add"
	d, err := arCheck(op, arOperand{"y", y, n}, arOperand{"a", a, n}, arOperand{"b", b, n})
	if err != nil || n == 0 {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithAdd, y: y, a: a, b: b, n: n, alpha: 1})
}

// AddTo adds x into y: y += x, the residual connection h = h + f(h). x and y
// are (n,).
func AddTo(r *gpu.Recorder, y, x Mem, n int64) error {
	const op = "add_to"
	d, err := arCheck(op, arOperand{"y", y, n}, arOperand{"x", x, n})
	if err != nil || n == 0 {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithScale, y: y, a: x, n: n, alpha: 1, acc: true})
}

// Mul sets y = a ⊙ b (elementwise). y, a and b are (n,); y may be a or b.
func Mul(r *gpu.Recorder, y, a, b Mem, n int64) error {
	const op = "mul"
	d, err := arCheck(op, arOperand{"y", y, n}, arOperand{"a", a, n}, arOperand{"b", b, n})
	if err != nil || n == 0 {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithMul, y: y, a: a, b: b, n: n, alpha: 1})
}

// Scale sets y = s·x for a constant s. x and y are (n,); y may be x.
func Scale(r *gpu.Recorder, y, x Mem, n int64, s float32) error {
	const op = "scale"
	d, err := arCheck(op, arOperand{"y", y, n}, arOperand{"x", x, n})
	if err != nil || n == 0 {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithScale, y: y, a: x, n: n, alpha: s})
}

// ScaleBy sets y = x·s[0] where s is a scalar on the device. x and y are
// (n,), s is (1,); y may be x.
func ScaleBy(r *gpu.Recorder, y, x, s Mem, n int64) error {
	const op = "scale_by"
	d, err := arCheck(op, arOperand{"y", y, n}, arOperand{"x", x, n}, arOperand{"s", s, 1})
	if err != nil || n == 0 {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithScaleBy, y: y, a: x, s: s, n: n, alpha: 1})
}

// AddRow sets y[r, c] = a[r, c] + b[c]. y and a are (rows, C), b is (C,); y
// may be a.
func AddRow(r *gpu.Recorder, y, a, b Mem, rows, C int64) error {
	op := fmt.Sprintf("add_row %dx%d", rows, C)
	if err := arDims(op, rows, C); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"y", y, rows * C}, arOperand{"a", a, rows * C}, arOperand{"b", b, C})
	if err != nil {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithAdd, y: y, a: a, b: b, n: rows * C, rowC: C, alpha: 1})
}

// MulRow sets y[r, c] = a[r, c]·b[c]. y and a are (rows, C), b is (C,); y
// may be a.
func MulRow(r *gpu.Recorder, y, a, b Mem, rows, C int64) error {
	op := fmt.Sprintf("mul_row %dx%d", rows, C)
	if err := arDims(op, rows, C); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"y", y, rows * C}, arOperand{"a", a, rows * C}, arOperand{"b", b, C})
	if err != nil {
		return err
	}
	return arith(r, d, arithArgs{op: op, kind: arithMul, y: y, a: a, b: b, n: rows * C, rowC: C, alpha: 1})
}

// arPassGrad sets (or with accumulate adds) dst = alpha·dy.
func arPassGrad(r *gpu.Recorder, d *gpu.Device, op string, dst, dy Mem, n int64, alpha float32, accumulate bool) error {
	return arith(r, d, arithArgs{op: op, kind: arithScale, y: dst, a: dy, n: n, alpha: alpha, acc: accumulate})
}

// AddBackward sets da = dy and db = dy (adds with accumulate) for y = a + b.
// All are (n,); a nil da or db is not computed.
func AddBackward(r *gpu.Recorder, da, db, dy Mem, n int64, accumulate bool) error {
	const op = "add_backward"
	ops := []arOperand{{"dy", dy, n}}
	if da.Buf != nil {
		ops = append(ops, arOperand{"da", da, n})
	}
	if db.Buf != nil {
		ops = append(ops, arOperand{"db", db, n})
	}
	d, err := arCheck(op, ops...)
	if err != nil || n == 0 {
		return err
	}
	for _, g := range []Mem{da, db} {
		if g.Buf != nil {
			if err := arPassGrad(r, d, op, g, dy, n, 1, accumulate); err != nil {
				return err
			}
		}
	}
	return nil
}

// MulBackward sets da = dy ⊙ b and db = dy ⊙ a (adds with accumulate) for
// y = a ⊙ b. All are (n,); a nil da or db is not computed (and the input
// it would need, b or a, may then be nil too).
func MulBackward(r *gpu.Recorder, da, db, dy, a, b Mem, n int64, accumulate bool) error {
	const op = "mul_backward"
	ops := []arOperand{{"dy", dy, n}}
	if da.Buf != nil {
		ops = append(ops, arOperand{"da", da, n}, arOperand{"b", b, n})
	}
	if db.Buf != nil {
		ops = append(ops, arOperand{"db", db, n}, arOperand{"a", a, n})
	}
	d, err := arCheck(op, ops...)
	if err != nil || n == 0 {
		return err
	}
	if da.Buf != nil {
		if err := arith(r, d, arithArgs{op: op, kind: arithMul, y: da, a: dy, b: b, n: n, alpha: 1, acc: accumulate}); err != nil {
			return err
		}
	}
	if db.Buf != nil {
		return arith(r, d, arithArgs{op: op, kind: arithMul, y: db, a: dy, b: a, n: n, alpha: 1, acc: accumulate})
	}
	return nil
}

// ScaleBackward sets dx = s·dy (adds with accumulate) for y = s·x. Both are
// (n,).
func ScaleBackward(r *gpu.Recorder, dx, dy Mem, n int64, s float32, accumulate bool) error {
	const op = "scale_backward"
	d, err := arCheck(op, arOperand{"dx", dx, n}, arOperand{"dy", dy, n})
	if err != nil || n == 0 {
		return err
	}
	return arPassGrad(r, d, op, dx, dy, n, s, accumulate)
}

// ScaleByBackward, for y = x·s[0], sets dx = dy·s[0] and ds[0] = Σ dy ⊙ x
// (adds with accumulate). dx, dy and x are (n,), s and ds are (1,); a nil dx
// or ds is not computed (x may then be nil when ds is, s when dx is).
func ScaleByBackward(r *gpu.Recorder, dx, ds, dy, x, s Mem, n int64, accumulate bool) error {
	const op = "scale_by_backward"
	ops := []arOperand{{"dy", dy, n}}
	if dx.Buf != nil {
		ops = append(ops, arOperand{"dx", dx, n}, arOperand{"s", s, 1})
	}
	if ds.Buf != nil {
		ops = append(ops, arOperand{"ds", ds, 1}, arOperand{"x", x, n})
	}
	d, err := arCheck(op, ops...)
	if err != nil || n == 0 {
		return err
	}
	if dx.Buf != nil {
		if err := arith(r, d, arithArgs{op: op, kind: arithScaleBy, y: dx, a: dy, s: s, n: n, alpha: 1, acc: accumulate}); err != nil {
			return err
		}
	}
	if ds.Buf != nil {
		return reduceAxis(r, d, reduceArgs{op: op, kind: reduceDot, y: ds, x: dy, x2: x,
			outer: 1, axis: n, inner: 1, scale: 1, acc: accumulate})
	}
	return nil
}

// AddRowBackward, for y[r, c] = a[r, c] + b[c], sets da = dy and
// db[c] = Σ_r dy[r, c] (adds with accumulate). da and dy are (rows, C), db
// is (C,); a nil da or db is not computed.
func AddRowBackward(r *gpu.Recorder, da, db, dy Mem, rows, C int64, accumulate bool) error {
	op := fmt.Sprintf("add_row_backward %dx%d", rows, C)
	if err := arDims(op, rows, C); err != nil {
		return err
	}
	ops := []arOperand{{"dy", dy, rows * C}}
	if da.Buf != nil {
		ops = append(ops, arOperand{"da", da, rows * C})
	}
	if db.Buf != nil {
		ops = append(ops, arOperand{"db", db, C})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	if da.Buf != nil {
		if err := arPassGrad(r, d, op, da, dy, rows*C, 1, accumulate); err != nil {
			return err
		}
	}
	if db.Buf != nil {
		return reduceAxis(r, d, reduceArgs{op: op, kind: reduceSum, y: db, x: dy,
			outer: 1, axis: rows, inner: C, scale: 1, acc: accumulate})
	}
	return nil
}

// MulRowBackward, for y[r, c] = a[r, c]·b[c], sets da[r, c] = dy[r, c]·b[c]
// and db[c] = Σ_r dy[r, c]·a[r, c] (adds with accumulate). da, dy and a are
// (rows, C), b and db are (C,); a nil da or db is not computed (b may then be
// nil when da is, a when db is).
func MulRowBackward(r *gpu.Recorder, da, db, dy, a, b Mem, rows, C int64, accumulate bool) error {
	op := fmt.Sprintf("mul_row_backward %dx%d", rows, C)
	if err := arDims(op, rows, C); err != nil {
		return err
	}
	ops := []arOperand{{"dy", dy, rows * C}}
	if da.Buf != nil {
		ops = append(ops, arOperand{"da", da, rows * C}, arOperand{"b", b, C})
	}
	if db.Buf != nil {
		ops = append(ops, arOperand{"db", db, C}, arOperand{"a", a, rows * C})
	}
	d, err := arCheck(op, ops...)
	if err != nil {
		return err
	}
	if da.Buf != nil {
		if err := arith(r, d, arithArgs{op: op, kind: arithMul, y: da, a: dy, b: b, n: rows * C, rowC: C, alpha: 1, acc: accumulate}); err != nil {
			return err
		}
	}
	if db.Buf != nil {
		return reduceAxis(r, d, reduceArgs{op: op, kind: reduceDot, y: db, x: dy, x2: a,
			outer: 1, axis: rows, inner: C, scale: 1, acc: accumulate})
	}
	return nil
}

// Float64 references.

// AddRef sets y = a + b.
func AddRef(y, a, b []float64) {
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

// MulRef sets y = a ⊙ b.
func MulRef(y, a, b []float64) {
	for i := range y {
		y[i] = a[i] * b[i]
	}
}

// ScaleRef sets y = s·x.
func ScaleRef(y, x []float64, s float64) {
	for i := range y {
		y[i] = s * x[i]
	}
}

// AddRowRef sets y[r, c] = a[r, c] + b[c] for (rows, C) arrays, C = len(b).
func AddRowRef(y, a, b []float64) {
	C := len(b)
	for i := range y {
		y[i] = a[i] + b[i%C]
	}
}

// MulRowRef sets y[r, c] = a[r, c]·b[c], C = len(b).
func MulRowRef(y, a, b []float64) {
	C := len(b)
	for i := range y {
		y[i] = a[i] * b[i%C]
	}
}

// MulBackwardRef returns da = dy ⊙ b and db = dy ⊙ a.
func MulBackwardRef(dy, a, b []float64) (da, db []float64) {
	da, db = make([]float64, len(dy)), make([]float64, len(dy))
	MulRef(da, dy, b)
	MulRef(db, dy, a)
	return da, db
}

// ScaleByBackwardRef returns dx = dy·s and ds = Σ dy ⊙ x.
func ScaleByBackwardRef(dy, x []float64, s float64) (dx []float64, ds float64) {
	dx = make([]float64, len(dy))
	for i := range dy {
		dx[i] = dy[i] * s
		ds += dy[i] * x[i]
	}
	return dx, ds
}

// AddRowBackwardRef returns da = dy and db[c] = Σ_r dy[r, c] for a (rows, C)
// dy.
func AddRowBackwardRef(dy []float64, C int) (da, db []float64) {
	da = append([]float64(nil), dy...)
	db = make([]float64, C)
	for i, g := range dy {
		db[i%C] += g
	}
	return da, db
}

// MulRowBackwardRef returns da[r, c] = dy[r, c]·b[c] and
// db[c] = Σ_r dy[r, c]·a[r, c], C = len(b).
func MulRowBackwardRef(dy, a, b []float64) (da, db []float64) {
	C := len(b)
	da = make([]float64, len(dy))
	db = make([]float64, C)
	for i, g := range dy {
		da[i] = g * b[i%C]
		db[i%C] += g * a[i]
	}
	return da, db
}

// Benchmarks (T5-large: 3248 rows of d_model 1024).

// rowsCols parses a "ROWSxC" shape.
func rowsCols(shape string) (int64, int64, error) {
	v, err := ParseShape(shape, 2)
	if err != nil {
		return 0, 0, err
	}
	return int64(v[0]), int64(v[1]), nil
}

func init() {
	binary := func(name string, f func(r *gpu.Recorder, y, a, b Mem, n int64) error) {
		registerBench(BenchOp{Name: name, Shapes: []string{"3248x1024"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				rows, C, err := rowsCols(shape)
				if err != nil {
					return nil, err
				}
				n := rows * C
				bufs, free, err := benchBuffers(d, n, n, n)
				if err != nil {
					return nil, err
				}
				y, a, b := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
				return &BenchCase{Op: name, Shape: shape, Bytes: 12 * float64(n),
					Record: func(r *gpu.Recorder) error { return f(r, y, a, b, n) }, Free: free}, nil
			}})
	}
	binary("add", Add)
	binary("mul", Mul)
	binary("add_to", func(r *gpu.Recorder, y, a, _ Mem, n int64) error { return AddTo(r, y, a, n) })
	registerBench(BenchOp{Name: "scale", Shapes: []string{"3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := rowsCols(shape)
			if err != nil {
				return nil, err
			}
			n := rows * C
			bufs, free, err := benchBuffers(d, n, n)
			if err != nil {
				return nil, err
			}
			y, x := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "scale", Shape: shape, Bytes: 8 * float64(n),
				Record: func(r *gpu.Recorder) error { return Scale(r, y, x, n, 0.5) }, Free: free}, nil
		}})
	row := func(name string, f func(r *gpu.Recorder, y, a, b Mem, rows, C int64) error) {
		registerBench(BenchOp{Name: name, Shapes: []string{"3248x1024"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				rows, C, err := rowsCols(shape)
				if err != nil {
					return nil, err
				}
				n := rows * C
				bufs, free, err := benchBuffers(d, n, n, C)
				if err != nil {
					return nil, err
				}
				y, a, b := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
				return &BenchCase{Op: name, Shape: shape, Bytes: 8*float64(n) + 4*float64(C),
					Record: func(r *gpu.Recorder) error { return f(r, y, a, b, rows, C) }, Free: free}, nil
			}})
	}
	row("add_row", AddRow)
	row("mul_row", MulRow)
	registerBench(BenchOp{Name: "add_row_backward", Shapes: []string{"3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := rowsCols(shape)
			if err != nil {
				return nil, err
			}
			n := rows * C
			bufs, free, err := benchBuffers(d, n, n, C)
			if err != nil {
				return nil, err
			}
			da, dy, db := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
			return &BenchCase{Op: "add_row_backward", Shape: shape, Bytes: 12*float64(n) + 4*float64(C),
				Record: func(r *gpu.Recorder) error { return AddRowBackward(r, da, db, dy, rows, C, true) }, Free: free}, nil
		}})
}
