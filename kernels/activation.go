package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Activations (ReLU, gelu_new, SiLU), forward and backward, and the gated
// product f(a) ⊙ b of T5 v1.1's feed-forward with its backward fused into
// one kernel. All elementwise over flat arrays; the backward passes need the
// pre-activation input.

// Activation selects an activation function.
type Activation int

const (
	// ReLU is max(x, 0) (T5 v1.0's feed-forward).
	ReLU Activation = iota
	// GELUNew is the tanh approximation
	// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), HF's "gelu_new", used by
	// T5 v1.1's gated-gelu feed-forward.
	GELUNew
	// SiLU is x·sigmoid(x).
	SiLU
)

func (a Activation) String() string {
	switch a {
	case ReLU:
		return "relu"
	case GELUNew:
		return "gelu_new"
	case SiLU:
		return "silu"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

func (a Activation) valid() bool { return a >= ReLU && a <= SiLU }

var (
	actKernel         = kernel("act", 5, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite)
	actGatedKernel    = kernel("act_gated", 4, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite)
	actGatedBwdKernel = kernel("act_gated_bwd", 8, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadWrite)
)

// actChunk is the most elements one dispatch covers: within every binding
// limit, and a multiple of 16 so chunks keep the operands' alignment.
func actChunk(d *gpu.Device) int64 { return tlViewLimit(d) / 16 * 16 }

// Activate sets y = f(x). y and x are (n,); y may alias x.
func Activate(r *gpu.Recorder, y, x Mem, n int64, act Activation) error {
	op := act.String()
	if !act.valid() {
		return fmt.Errorf("activation: unknown %v", act)
	}
	shape := fmt.Sprintf("x is (%d,)", n)
	d, err := tlCheck(op, shape, tlOperand{"y", y, n}, tlOperand{"x", x, n})
	if err != nil || n == 0 {
		return err
	}
	p, err := pipeline(d, op, actKernel, uint32(act), 0, 0)
	if err != nil {
		return err
	}
	return chunks(n, actChunk(d), func(lo, hi int64) error {
		xb, xs := tlView(d, x.At(lo), hi-lo)
		yb, ys := tlOut(d, y.At(lo), hi-lo)
		return r.Dispatch(p, grid1D(d, tlGroups4(ys, hi-lo)), []uint32{uint32(hi - lo), xs, xs, xs, ys}, xb, xb, xb, yb)
	})
}

// ActivateBackward sets dx = dy ⊙ f'(x), or adds it to dx when accumulate.
// dx, dy and x (the pre-activation input) are (n,); dx may alias dy when not
// accumulating.
func ActivateBackward(r *gpu.Recorder, dx, dy, x Mem, n int64, act Activation, accumulate bool) error {
	op := act.String() + " backward"
	if !act.valid() {
		return fmt.Errorf("activation backward: unknown %v", act)
	}
	shape := fmt.Sprintf("x is (%d,)", n)
	d, err := tlCheck(op, shape, tlOperand{"dx", dx, n}, tlOperand{"dy", dy, n}, tlOperand{"x", x, n})
	if err != nil || n == 0 {
		return err
	}
	p, err := pipeline(d, op, actKernel, uint32(act), 1, tlBit(accumulate))
	if err != nil {
		return err
	}
	return chunks(n, actChunk(d), func(lo, hi int64) error {
		xb, xs := tlView(d, x.At(lo), hi-lo)
		dyb, dys := tlView(d, dy.At(lo), hi-lo)
		ob, os := tlView(d, dx.At(lo), hi-lo)
		yb, ys := tlOut(d, dx.At(lo), hi-lo)
		return r.Dispatch(p, grid1D(d, tlGroups4(ys, hi-lo)), []uint32{uint32(hi - lo), xs, dys, os, ys}, xb, dyb, ob, yb)
	})
}

// GatedActivation sets h = f(a) ⊙ b, the gated feed-forward of T5 v1.1
// (a = x·Wi0, b = x·Wi1, f = GELUNew). h, a and b are (n,), n = rows × d_ff;
// h may alias a or b.
func GatedActivation(r *gpu.Recorder, h, a, b Mem, n int64, act Activation) error {
	op := "gated " + act.String()
	if !act.valid() {
		return fmt.Errorf("gated activation: unknown %v", act)
	}
	shape := fmt.Sprintf("a is (%d,)", n)
	d, err := tlCheck(op, shape, tlOperand{"h", h, n}, tlOperand{"a", a, n}, tlOperand{"b", b, n})
	if err != nil || n == 0 {
		return err
	}
	p, err := pipeline(d, op, actGatedKernel, uint32(act))
	if err != nil {
		return err
	}
	return chunks(n, actChunk(d), func(lo, hi int64) error {
		ab, as := tlView(d, a.At(lo), hi-lo)
		bb, bs := tlView(d, b.At(lo), hi-lo)
		hb, hs := tlOut(d, h.At(lo), hi-lo)
		return r.Dispatch(p, grid1D(d, tlGroups4(hs, hi-lo)), []uint32{uint32(hi - lo), as, bs, hs}, ab, bb, hb)
	})
}

// GatedActivationBackward computes both gradients of h = f(a) ⊙ b in one
// pass,
//
//	da = dh ⊙ b ⊙ f'(a),  db = dh ⊙ f(a),
//
// written to da and db, or added to them when accumulate. All are (n,); da
// and db must not overlap each other or dh, a, b.
func GatedActivationBackward(r *gpu.Recorder, da, db, dh, a, b Mem, n int64, act Activation, accumulate bool) error {
	op := "gated " + act.String() + " backward"
	if !act.valid() {
		return fmt.Errorf("gated activation backward: unknown %v", act)
	}
	shape := fmt.Sprintf("a is (%d,)", n)
	d, err := tlCheck(op, shape, tlOperand{"da", da, n}, tlOperand{"db", db, n}, tlOperand{"dh", dh, n},
		tlOperand{"a", a, n}, tlOperand{"b", b, n})
	if err != nil || n == 0 {
		return err
	}
	p, err := pipeline(d, op, actGatedBwdKernel, uint32(act), tlBit(accumulate))
	if err != nil {
		return err
	}
	return chunks(n, actChunk(d), func(lo, hi int64) error {
		m := hi - lo
		dhb, dhs := tlView(d, dh.At(lo), m)
		ab, as := tlView(d, a.At(lo), m)
		bb, bs := tlView(d, b.At(lo), m)
		daob, daos := tlView(d, da.At(lo), m)
		dbob, dbos := tlView(d, db.At(lo), m)
		dab, das := tlOut(d, da.At(lo), m)
		dbb, dbs := tlOut(d, db.At(lo), m)
		return r.Dispatch(p, grid1D(d, tlGroups4(das, m)), []uint32{uint32(m), dhs, as, bs, daos, dbos, das, dbs},
			dhb, ab, bb, daob, dbob, dab, dbb)
	})
}

const (
	geluK0 = 0.7978845608028654 // √(2/π)
	geluK1 = 0.044715
)

// ActivationValue is the float64 reference f(x).
func ActivationValue(act Activation, x float64) float64 {
	switch act {
	case ReLU:
		return math.Max(x, 0)
	case GELUNew:
		return 0.5 * x * (1 + math.Tanh(geluK0*(x+geluK1*x*x*x)))
	case SiLU:
		return x / (1 + math.Exp(-x))
	}
	return math.NaN()
}

// ActivationGrad is the float64 reference f'(x) (ReLU'(0) = 0).
func ActivationGrad(act Activation, x float64) float64 {
	switch act {
	case ReLU:
		if x > 0 {
			return 1
		}
		return 0
	case GELUNew:
		t := math.Tanh(geluK0 * (x + geluK1*x*x*x))
		return 0.5*(1+t) + 0.5*x*(1-t*t)*geluK0*(1+3*geluK1*x*x)
	case SiLU:
		s := 1 / (1 + math.Exp(-x))
		return s * (1 + x*(1-s))
	}
	return math.NaN()
}

// ActivateRef sets y = f(x).
func ActivateRef(y, x []float64, act Activation) {
	for i, v := range x {
		y[i] = ActivationValue(act, v)
	}
}

// ActivateBackwardRef sets dx = dy ⊙ f'(x).
func ActivateBackwardRef(dx, dy, x []float64, act Activation) {
	for i, v := range x {
		dx[i] = dy[i] * ActivationGrad(act, v)
	}
}

// GatedActivationRef sets h = f(a) ⊙ b.
func GatedActivationRef(h, a, b []float64, act Activation) {
	for i := range a {
		h[i] = ActivationValue(act, a[i]) * b[i]
	}
}

// GatedActivationBackwardRef sets da = dh ⊙ b ⊙ f'(a) and db = dh ⊙ f(a).
func GatedActivationBackwardRef(da, db, dh, a, b []float64, act Activation) {
	for i := range a {
		da[i] = dh[i] * b[i] * ActivationGrad(act, a[i])
		db[i] = dh[i] * ActivationValue(act, a[i])
	}
}

func init() {
	// T5-large feed-forward: 8 × 406 tokens × d_ff 4096 (relu, v1.0) or
	// 2816 (gated-gelu, v1.1).
	unary := func(name string, act Activation, bwd bool) BenchOp {
		return BenchOp{Name: name, Shapes: []string{"3248x4096"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				rows, C, err := tlShape2(shape)
				if err != nil {
					return nil, err
				}
				n := int64(rows) * int64(C)
				bufs, free, err := benchBuffers(d, n, n, n)
				if err != nil {
					return nil, err
				}
				x, dy, y := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
				c := &BenchCase{Op: name, Shape: shape, Bytes: 8 * float64(n), Free: free,
					Record: func(r *gpu.Recorder) error { return Activate(r, y, x, n, act) }}
				if bwd {
					c.Bytes = 12 * float64(n)
					c.Record = func(r *gpu.Recorder) error { return ActivateBackward(r, y, dy, x, n, act, false) }
				}
				return c, nil
			}}
	}
	registerBench(unary("relu", ReLU, false))
	registerBench(unary("relu-bwd", ReLU, true))
	registerBench(unary("gelu", GELUNew, false))
	registerBench(BenchOp{Name: "gelu-gated", Shapes: []string{"3248x2816"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := tlShape2(shape)
			if err != nil {
				return nil, err
			}
			n := int64(rows) * int64(C)
			bufs, free, err := benchBuffers(d, n, n, n)
			if err != nil {
				return nil, err
			}
			a, b, h := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
			return &BenchCase{Op: "gelu-gated", Shape: shape, Bytes: 12 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error { return GatedActivation(r, h, a, b, n, GELUNew) }}, nil
		}})
	registerBench(BenchOp{Name: "gelu-gated-bwd", Shapes: []string{"3248x2816"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := tlShape2(shape)
			if err != nil {
				return nil, err
			}
			n := int64(rows) * int64(C)
			bufs, free, err := benchBuffers(d, n, n, n, n, n)
			if err != nil {
				return nil, err
			}
			dh, a, b, da, db := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3]), Whole(bufs[4])
			return &BenchCase{Op: "gelu-gated-bwd", Shape: shape, Bytes: 20 * float64(n), Free: free,
				Record: func(r *gpu.Recorder) error { return GatedActivationBackward(r, da, db, dh, a, b, n, GELUNew, false) }}, nil
		}})
}
