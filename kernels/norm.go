package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// T5's RMS norm and LayerNorm over the last axis, forward and backward.
// Forward kernels give each row to one subgroup; the weight gradients are a
// separate, deterministic column reduction (one invocation per four columns
// looping over the rows in order), so that frozen weights cost nothing.

var (
	rmsNormKernel      = kernel("norm_rms", 7, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadWrite)
	rmsNormBwdKernel   = kernel("norm_rms_bwd", 8, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite)
	layerNormKernel    = kernel("norm_layer", 9, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadWrite, gpu.ReadWrite)
	layerNormBwdKernel = kernel("norm_layer_bwd", 9, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite)
	normWGradKernel    = kernel("norm_wgrad", 10, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.TexelRGBA32F, gpu.ReadWrite, gpu.ReadWrite)
)

// normWGradWG is the workgroup size of shaders/norm_wgrad.comp.
const normWGradWG = 64

// RMSNorm computes T5's layer norm (no mean subtraction, no bias):
//
//	rstd[i] = 1 / sqrt(mean_j x[i,j]² + eps),  y[i,j] = w[j] · x[i,j] · rstd[i].
//
// y is (rows, C), x is (rows, C), w is (C,), rstd is (rows,), saved for the
// backward pass, or a nil Mem when it is not needed. y may alias x.
func RMSNorm(r *gpu.Recorder, y, rstd, x, w Mem, rows, C int, eps float32) error {
	const op = "rmsnorm"
	if err := tlPositive(op, "rows and C", rows, C); err != nil {
		return err
	}
	n := int64(rows) * int64(C)
	shape := fmt.Sprintf("x is %s", tlDims(rows, C))
	ops := []tlOperand{{"y", y, n}, {"x", x, n}, {"w", w, int64(C)}}
	save := rstd.Buf != nil
	if save {
		ops = append(ops, tlOperand{"rstd", rstd, int64(rows)})
	}
	d, err := tlCheck(op, shape, ops...)
	if err != nil {
		return err
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, rmsNormKernel, wg, tlBit(save))
	if err != nil {
		return err
	}
	wb, ws := tlView(d, w, int64(C))
	return tlRowChunks(op, d, int64(rows), int64(C), func(lo, hi int64) error {
		m := (hi - lo) * int64(C)
		xb, xs := tlView(d, x.At(lo*int64(C)), m)
		yb, ys := tlOut(d, y.At(lo*int64(C)), m)
		rb, rs := yb, uint32(0)
		if save {
			rb, rs = tlOut(d, rstd.At(lo), hi-lo)
		}
		return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
			[]uint32{uint32(hi - lo), uint32(C), f32(eps), xs, ws, ys, rs}, xb, wb, yb, rb)
	})
}

// RMSNormBackward computes the input gradient of RMSNorm,
//
//	dx = rstd · (w ⊙ dy − x · rstd² · Σ_j(dy ⊙ w ⊙ x) / C),
//
// written to dx, or added to it when accumulate. dx, dy and x are
// (rows, C), w is (C,), rstd is (rows,) as saved by RMSNorm. dx may alias dy
// when not accumulating.
func RMSNormBackward(r *gpu.Recorder, dx, dy, x, w, rstd Mem, rows, C int, accumulate bool) error {
	const op = "rmsnorm backward"
	if err := tlPositive(op, "rows and C", rows, C); err != nil {
		return err
	}
	n := int64(rows) * int64(C)
	d, err := tlCheck(op, fmt.Sprintf("x is %s", tlDims(rows, C)),
		tlOperand{"dx", dx, n}, tlOperand{"dy", dy, n}, tlOperand{"x", x, n}, tlOperand{"w", w, int64(C)}, tlOperand{"rstd", rstd, int64(rows)})
	if err != nil {
		return err
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, rmsNormBwdKernel, wg, tlBit(accumulate))
	if err != nil {
		return err
	}
	wb, ws := tlView(d, w, int64(C))
	return tlRowChunks(op, d, int64(rows), int64(C), func(lo, hi int64) error {
		m := (hi - lo) * int64(C)
		dyb, dys := tlView(d, dy.At(lo*int64(C)), m)
		xb, xs := tlView(d, x.At(lo*int64(C)), m)
		rb, rs := tlView(d, rstd.At(lo), hi-lo)
		ob, os := tlView(d, dx.At(lo*int64(C)), m)
		dxb, dxs := tlOut(d, dx.At(lo*int64(C)), m)
		return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
			[]uint32{uint32(hi - lo), uint32(C), dys, xs, ws, rs, os, dxs}, dyb, xb, wb, rb, ob, dxb)
	})
}

// RMSNormWeightGrad computes the weight gradient of RMSNorm,
//
//	dw[j] = Σ_i dy[i,j] · x[i,j] · rstd[i],
//
// written to dw, or added to it when accumulate. dy and x are (rows, C),
// rstd is (rows,) as saved by RMSNorm, dw is (C,). Call it only for
// trainable weights.
func RMSNormWeightGrad(r *gpu.Recorder, dw, dy, x, rstd Mem, rows, C int, accumulate bool) error {
	return normWeightGrad("rmsnorm weight grad", r, false, dw, Mem{}, dy, x, Mem{}, rstd, rows, C, accumulate)
}

// LayerNorm computes
//
//	mean[i] = Σ_j x[i,j] / C,  rstd[i] = 1 / sqrt(Σ_j (x[i,j] − mean[i])² / C + eps),
//	y[i,j] = (x[i,j] − mean[i]) · rstd[i] · w[j] + b[j]
//
// (biased variance, as torch.nn.LayerNorm). y and x are (rows, C), w and b
// are (C,), mean and rstd are (rows,), saved for the backward pass, or both
// nil Mems when not needed. y may alias x.
func LayerNorm(r *gpu.Recorder, y, mean, rstd, x, w, b Mem, rows, C int, eps float32) error {
	const op = "layernorm"
	if err := tlPositive(op, "rows and C", rows, C); err != nil {
		return err
	}
	n := int64(rows) * int64(C)
	shape := fmt.Sprintf("x is %s", tlDims(rows, C))
	ops := []tlOperand{{"y", y, n}, {"x", x, n}, {"w", w, int64(C)}, {"b", b, int64(C)}}
	save := mean.Buf != nil || rstd.Buf != nil
	if save {
		ops = append(ops, tlOperand{"mean", mean, int64(rows)}, tlOperand{"rstd", rstd, int64(rows)})
	}
	d, err := tlCheck(op, shape, ops...)
	if err != nil {
		return err
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, layerNormKernel, wg, tlBit(save))
	if err != nil {
		return err
	}
	wb, ws := tlView(d, w, int64(C))
	bb, bs := tlView(d, b, int64(C))
	return tlRowChunks(op, d, int64(rows), int64(C), func(lo, hi int64) error {
		m := (hi - lo) * int64(C)
		xb, xs := tlView(d, x.At(lo*int64(C)), m)
		yb, ys := tlOut(d, y.At(lo*int64(C)), m)
		mb, ms, rb, rs := yb, uint32(0), yb, uint32(0)
		if save {
			mb, ms = tlOut(d, mean.At(lo), hi-lo)
			rb, rs = tlOut(d, rstd.At(lo), hi-lo)
		}
		return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
			[]uint32{uint32(hi - lo), uint32(C), f32(eps), xs, ws, bs, ys, ms, rs}, xb, wb, bb, yb, mb, rb)
	})
}

// LayerNormBackward computes the input gradient of LayerNorm: with
// xhat = (x − mean) · rstd and g = dy ⊙ w,
//
//	dx = rstd · (g − Σ_j g / C − xhat · Σ_j(g ⊙ xhat) / C),
//
// written to dx, or added to it when accumulate. dx, dy and x are
// (rows, C), w is (C,), mean and rstd are (rows,) as saved by LayerNorm. dx
// may alias dy when not accumulating.
func LayerNormBackward(r *gpu.Recorder, dx, dy, x, w, mean, rstd Mem, rows, C int, accumulate bool) error {
	const op = "layernorm backward"
	if err := tlPositive(op, "rows and C", rows, C); err != nil {
		return err
	}
	n := int64(rows) * int64(C)
	d, err := tlCheck(op, fmt.Sprintf("x is %s", tlDims(rows, C)),
		tlOperand{"dx", dx, n}, tlOperand{"dy", dy, n}, tlOperand{"x", x, n}, tlOperand{"w", w, int64(C)},
		tlOperand{"mean", mean, int64(rows)}, tlOperand{"rstd", rstd, int64(rows)})
	if err != nil {
		return err
	}
	wg, per, err := tlRowSetup(op, d)
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, layerNormBwdKernel, wg, tlBit(accumulate))
	if err != nil {
		return err
	}
	wb, ws := tlView(d, w, int64(C))
	return tlRowChunks(op, d, int64(rows), int64(C), func(lo, hi int64) error {
		m := (hi - lo) * int64(C)
		dyb, dys := tlView(d, dy.At(lo*int64(C)), m)
		xb, xs := tlView(d, x.At(lo*int64(C)), m)
		mb, ms := tlView(d, mean.At(lo), hi-lo)
		rb, rs := tlView(d, rstd.At(lo), hi-lo)
		ob, os := tlView(d, dx.At(lo*int64(C)), m)
		dxb, dxs := tlOut(d, dx.At(lo*int64(C)), m)
		return r.Dispatch(p, tlRowGrid(d, hi-lo, per),
			[]uint32{uint32(hi - lo), uint32(C), dys, xs, ws, ms, rs, os, dxs}, dyb, xb, wb, mb, rb, ob, dxb)
	})
}

// LayerNormWeightGrad computes the weight and bias gradients of LayerNorm,
//
//	dw[j] = Σ_i dy[i,j] · (x[i,j] − mean[i]) · rstd[i],  db[j] = Σ_i dy[i,j],
//
// written to dw and db, or added to them when accumulate; either may be a
// nil Mem (a frozen weight or bias). dy and x are (rows, C), mean and rstd
// are (rows,) as saved by LayerNorm, dw and db are (C,).
func LayerNormWeightGrad(r *gpu.Recorder, dw, db, dy, x, mean, rstd Mem, rows, C int, accumulate bool) error {
	return normWeightGrad("layernorm weight grad", r, true, dw, db, dy, x, mean, rstd, rows, C, accumulate)
}

func normWeightGrad(op string, r *gpu.Recorder, layer bool, dw, db, dy, x, mean, rstd Mem, rows, C int, accumulate bool) error {
	if err := tlPositive(op, "rows and C", rows, C); err != nil {
		return err
	}
	hasW, hasB := dw.Buf != nil, db.Buf != nil
	if !hasW && !hasB {
		return nil // nothing trainable
	}
	n := int64(rows) * int64(C)
	ops := []tlOperand{{"dy", dy, n}}
	if hasW {
		ops = append(ops, tlOperand{"x", x, n}, tlOperand{"rstd", rstd, int64(rows)}, tlOperand{"dw", dw, int64(C)})
		if layer {
			ops = append(ops, tlOperand{"mean", mean, int64(rows)})
		}
	}
	if hasB {
		ops = append(ops, tlOperand{"db", db, int64(C)})
	}
	d, err := tlCheck(op, fmt.Sprintf("x is %s", tlDims(rows, C)), ops...)
	if err != nil {
		return err
	}
	if !hasW { // unused bindings: bind dy in their place
		x, rstd = dy, dy
	}
	if !layer || !hasW {
		mean = rstd
	}
	first := dw
	if !hasW {
		first = db
	}
	// Large inputs are reduced in row chunks, each adding to the result of
	// the previous ones.
	return tlRowChunksMax(op, d, int64(rows), int64(C), tlMaxLoop, func(lo, hi int64) error {
		acc := accumulate || lo > 0
		p, err := pipeline(d, op, normWGradKernel, tlBit(layer), tlBit(hasW), tlBit(hasB), tlBit(acc))
		if err != nil {
			return err
		}
		m := (hi - lo) * int64(C)
		dyb, dys := tlView(d, dy.At(lo*int64(C)), m)
		xb, xs := tlView(d, x.At(lo*int64(C)), m)
		mb, ms := tlView(d, mean.At(lo), hi-lo)
		rb, rs := tlView(d, rstd.At(lo), hi-lo)
		fb, fs := tlOut(d, first, int64(C))
		wob, wos, wb, ws := dyb, uint32(0), fb, fs // unused texel views: dy
		bob, bos, bb, bs := dyb, uint32(0), fb, fs
		if hasW {
			wob, wos = tlView(d, dw, int64(C))
		}
		if hasB {
			bob, bos = tlView(d, db, int64(C))
			bb, bs = tlOut(d, db, int64(C))
		}
		g := (tlGroups4(fs, int64(C)) + normWGradWG - 1) / normWGradWG
		return r.Dispatch(p, [3]uint32{uint32(g), 1, 1},
			[]uint32{uint32(hi - lo), uint32(C), dys, xs, ms, rs, wos, bos, ws, bs}, dyb, xb, mb, rb, wob, bob, wb, bb)
	})
}

// RMSNormRef is the float64 reference of RMSNorm; rstd may be nil.
func RMSNormRef(y, rstd, x, w []float64, rows, C int, eps float64) {
	for i := 0; i < rows; i++ {
		xr := x[i*C : (i+1)*C]
		ss := 0.0
		for _, v := range xr {
			ss += v * v
		}
		rs := 1 / math.Sqrt(ss/float64(C)+eps)
		if rstd != nil {
			rstd[i] = rs
		}
		for j, v := range xr {
			y[i*C+j] = w[j] * v * rs
		}
	}
}

// RMSNormBackwardRef sets dx to the input gradient of RMSNorm.
func RMSNormBackwardRef(dx, dy, x, w, rstd []float64, rows, C int) {
	for i := 0; i < rows; i++ {
		o := i * C
		s := 0.0
		for j := 0; j < C; j++ {
			s += dy[o+j] * w[j] * x[o+j]
		}
		r := rstd[i]
		for j := 0; j < C; j++ {
			dx[o+j] = r * (w[j]*dy[o+j] - x[o+j]*r*r*s/float64(C))
		}
	}
}

// RMSNormWeightGradRef sets dw to the weight gradient of RMSNorm.
func RMSNormWeightGradRef(dw, dy, x, rstd []float64, rows, C int) {
	for j := range dw[:C] {
		dw[j] = 0
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < C; j++ {
			dw[j] += dy[i*C+j] * x[i*C+j] * rstd[i]
		}
	}
}

// LayerNormRef is the float64 reference of LayerNorm; mean and rstd may be
// nil.
func LayerNormRef(y, mean, rstd, x, w, b []float64, rows, C int, eps float64) {
	for i := 0; i < rows; i++ {
		xr := x[i*C : (i+1)*C]
		mu := 0.0
		for _, v := range xr {
			mu += v
		}
		mu /= float64(C)
		ss := 0.0
		for _, v := range xr {
			ss += (v - mu) * (v - mu)
		}
		rs := 1 / math.Sqrt(ss/float64(C)+eps)
		if mean != nil {
			mean[i] = mu
		}
		if rstd != nil {
			rstd[i] = rs
		}
		for j, v := range xr {
			y[i*C+j] = (v-mu)*rs*w[j] + b[j]
		}
	}
}

// LayerNormBackwardRef sets dx to the input gradient of LayerNorm.
func LayerNormBackwardRef(dx, dy, x, w, mean, rstd []float64, rows, C int) {
	for i := 0; i < rows; i++ {
		o := i * C
		s1, s2 := 0.0, 0.0
		for j := 0; j < C; j++ {
			g := dy[o+j] * w[j]
			s1 += g
			s2 += g * (x[o+j] - mean[i]) * rstd[i]
		}
		for j := 0; j < C; j++ {
			xh := (x[o+j] - mean[i]) * rstd[i]
			dx[o+j] = rstd[i] * (dy[o+j]*w[j] - s1/float64(C) - xh*s2/float64(C))
		}
	}
}

// LayerNormWeightGradRef sets dw and db (either may be nil) to the weight
// and bias gradients of LayerNorm.
func LayerNormWeightGradRef(dw, db, dy, x, mean, rstd []float64, rows, C int) {
	for j := 0; j < C; j++ {
		if dw != nil {
			dw[j] = 0
		}
		if db != nil {
			db[j] = 0
		}
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < C; j++ {
			g := dy[i*C+j]
			if dw != nil {
				dw[j] += g * (x[i*C+j] - mean[i]) * rstd[i]
			}
			if db != nil {
				db[j] += g
			}
		}
	}
}

// tlShape2 parses "ROWSxC".
func tlShape2(shape string) (int, int, error) {
	v, err := ParseShape(shape, 2)
	if err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

func init() {
	// T5-large: 8 × 406 tokens × d_model 1024; the SHLPT similarity
	// estimator's LayerNorm on (8, 1024).
	registerBench(BenchOp{Name: "rmsnorm", Shapes: []string{"3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := tlShape2(shape)
			if err != nil {
				return nil, err
			}
			n := int64(rows) * int64(C)
			bufs, free, err := benchBuffers(d, n, int64(C), n, int64(rows))
			if err != nil {
				return nil, err
			}
			x, w, y, rs := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3])
			return &BenchCase{Op: "rmsnorm", Shape: shape, Bytes: 4 * float64(2*n+int64(C)+int64(rows)),
				Record: func(r *gpu.Recorder) error { return RMSNorm(r, y, rs, x, w, rows, C, 1e-6) }, Free: free}, nil
		}})
	registerBench(BenchOp{Name: "rmsnorm-bwd", Shapes: []string{"3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := tlShape2(shape)
			if err != nil {
				return nil, err
			}
			n := int64(rows) * int64(C)
			bufs, free, err := benchBuffers(d, n, n, int64(C), int64(rows), n)
			if err != nil {
				return nil, err
			}
			dy, x, w, rs, dx := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3]), Whole(bufs[4])
			return &BenchCase{Op: "rmsnorm-bwd", Shape: shape, Bytes: 4 * float64(3*n+int64(C)+int64(rows)),
				Record: func(r *gpu.Recorder) error { return RMSNormBackward(r, dx, dy, x, w, rs, rows, C, false) }, Free: free}, nil
		}})
	registerBench(BenchOp{Name: "layernorm", Shapes: []string{"8x1024", "3248x1024"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			rows, C, err := tlShape2(shape)
			if err != nil {
				return nil, err
			}
			n := int64(rows) * int64(C)
			bufs, free, err := benchBuffers(d, n, int64(C), int64(C), n, int64(rows), int64(rows))
			if err != nil {
				return nil, err
			}
			x, w, b, y, mu, rs := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3]), Whole(bufs[4]), Whole(bufs[5])
			return &BenchCase{Op: "layernorm", Shape: shape, Bytes: 4 * float64(2*n+2*int64(C)+2*int64(rows)),
				Record: func(r *gpu.Recorder) error { return LayerNorm(r, y, mu, rs, x, w, b, rows, C, 1e-5) }, Free: free}, nil
		}})
}
