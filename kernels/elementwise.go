package kernels

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

var (
	fillKernel  = kernel("fill", 3, gpu.ReadWrite)
	copyKernel4 = kernel("copy", 3, gpu.TexelRGBA32F, gpu.ReadWrite) // spec VEC4 = 1
	copyKernel1 = kernel("copy", 3, gpu.TexelR32F, gpu.ReadWrite)    // spec VEC4 = 0
	axpyKernel  = kernel("axpy", 5, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)
)

// Fill sets y[i] = value for i < n. y is (n,).
func Fill(r *gpu.Recorder, y Mem, n int64, value float32) error {
	const op = "fill"
	if err := y.check(op, "y", n); err != nil {
		return err
	}
	d := y.Buf.Device()
	p, err := pipeline(d, op, fillKernel)
	if err != nil {
		return err
	}
	return chunks(n, maxElems(d), func(lo, hi int64) error {
		yb, yo := span(d, y.At(lo), hi-lo)
		return r.Dispatch(p, grid1D(d, (hi-lo+3)/4), []uint32{uint32(hi - lo), f32(value), yo}, yb)
	})
}

// Copy sets y[i] = x[i] for i < n. x and y are (n,) and must not overlap.
func Copy(r *gpu.Recorder, y, x Mem, n int64) error {
	const op = "copy"
	if err := x.check(op, "x", n); err != nil {
		return err
	}
	if err := y.check(op, "y", n); err != nil {
		return err
	}
	d := y.Buf.Device()
	vec4 := x.Off%4 == 0 && y.Off%4 == 0
	var p *gpu.Pipeline
	var err error
	texel := int64(1)
	if vec4 {
		texel = 4
		p, err = pipeline(d, op, copyKernel4, 1)
	} else {
		p, err = pipeline(d, op, copyKernel1, 0)
	}
	if err != nil {
		return err
	}
	return chunks(n, maxElems(d)/16*16, func(lo, hi int64) error {
		xb, xo := texelSpan(d, x.At(lo), hi-lo, texel)
		yb, yo := span(d, y.At(lo), hi-lo)
		if vec4 && (xo%4 != 0 || yo%4 != 0) {
			return fmt.Errorf("%s: internal: misaligned vec4 view (shifts %d, %d)", op, xo, yo)
		}
		return r.Dispatch(p, grid1D(d, (hi-lo+3)/4), []uint32{uint32(hi - lo), xo, yo}, xb, yb)
	})
}

// Axpy sets y[i] += alpha*x[i] for i < n. x and y are (n,).
func Axpy(r *gpu.Recorder, y Mem, alpha float32, x Mem, n int64) error {
	const op = "axpy"
	if err := x.check(op, "x", n); err != nil {
		return err
	}
	if err := y.check(op, "y", n); err != nil {
		return err
	}
	if x.Buf.Device() != y.Buf.Device() {
		return fmt.Errorf("%s: x and y are on different devices", op)
	}
	d := y.Buf.Device()
	p, err := pipeline(d, op, axpyKernel)
	if err != nil {
		return err
	}
	return chunks(n, maxElems(d), func(lo, hi int64) error {
		xb, xo := texelSpan(d, x.At(lo), hi-lo, 1)
		yib, yio := texelSpan(d, y.At(lo), hi-lo, 1)
		yb, yo := span(d, y.At(lo), hi-lo)
		return r.Dispatch(p, grid1D(d, (hi-lo+3)/4), []uint32{uint32(hi - lo), f32(alpha), xo, yo, yio}, xb, yib, yb)
	})
}

// FillRef, CopyRef and AxpyRef are the float64 references.
func FillRef(y []float64, value float64) {
	for i := range y {
		y[i] = value
	}
}

// CopyRef sets y = x.
func CopyRef(y, x []float64) { copy(y, x) }

// AxpyRef sets y += alpha*x.
func AxpyRef(y []float64, alpha float64, x []float64) {
	for i := range y {
		y[i] += alpha * x[i]
	}
}
