// Package kernels launches the engine's compute shaders. One file per op
// family holds the kernel declaration, its Go launch wrapper (shapes in the
// signature, a comment with each operand's layout), its float64 CPU reference
// and, beside it, the test comparing the two.
//
// Wrappers record into a gpu.Recorder and never allocate device memory
// behind the caller's back; scratch space, where an op needs it, is a
// parameter. Operands are Mem values: float32 (or int32) arrays at an element
// offset inside a buffer, so that views of larger tensors need no copies.
package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shaders"
)

// Mem is an array of 4-byte elements on the device: element i is at byte
// 4*(Off+i) of Buf.
type Mem struct {
	Buf *gpu.Buffer
	Off int64 // in elements
}

// At returns the view starting k elements further.
func (m Mem) At(k int64) Mem { return Mem{Buf: m.Buf, Off: m.Off + k} }

// Whole views a buffer from its start.
func Whole(b *gpu.Buffer) Mem { return Mem{Buf: b} }

// Len is the number of 4-byte elements from Off to the end of the buffer.
func (m Mem) Len() int64 {
	if m.Buf == nil {
		return 0
	}
	return m.Buf.Size()/4 - m.Off
}

func (m Mem) String() string {
	if m.Buf == nil {
		return "nil"
	}
	return fmt.Sprintf("%v+%d", m.Buf, m.Off)
}

// check returns an error unless m holds at least n elements.
func (m Mem) check(op, name string, n int64) error {
	if m.Buf == nil {
		return fmt.Errorf("%s: %s is nil", op, name)
	}
	if m.Buf.Freed() {
		return fmt.Errorf("%s: %s (%v) was freed", op, name, m.Buf)
	}
	if m.Off < 0 || n < 0 || m.Off+n > m.Buf.Size()/4 {
		return fmt.Errorf("%s: %s needs %d elements at offset %d but its buffer holds %d", op, name, n, m.Off, m.Buf.Size()/4)
	}
	return nil
}

// span binds n elements of m as a storage buffer. The binding starts at the
// aligned byte offset at or below m.Off; the returned shift is the element
// index of m.Off inside the binding, to be passed to the shader.
func span(d *gpu.Device, m Mem, n int64) (gpu.Binding, uint32) {
	align := int64(d.Info().MinStorageBufferAlign)
	if align < 4 {
		align = 4
	}
	byteOff := 4 * m.Off
	start := byteOff / align * align
	end := byteOff + 4*n
	if end == start {
		end = start + 4
	}
	return m.Buf.Range(start, end-start), uint32((byteOff - start) / 4)
}

// texelSpan binds n elements of m as a texel buffer of float texels
// (texel = 1) or RGBA32F texels (texel = 4). The start is aligned down to the
// device's texel-offset alignment (and to 16 bytes), the end rounded up to a
// whole texel; shift is the element index of m.Off inside the view.
func texelSpan(d *gpu.Device, m Mem, n int64, texel int64) (gpu.Binding, uint32) {
	align := int64(d.Info().MinTexelBufferAlign)
	if align < 16 {
		align = 16
	}
	byteOff := 4 * m.Off
	start := byteOff / align * align
	end := byteOff + 4*n
	tb := 4 * texel
	end = start + (end-start+tb-1)/tb*tb
	if end == start {
		end = start + tb
	}
	return m.Buf.Range(start, end-start), uint32((byteOff - start) / 4)
}

// maxElems is the most elements one storage binding may hold, leaving room
// for the alignment shift.
func maxElems(d *gpu.Device) int64 {
	return (int64(d.Info().MaxStorageBufferRange) - int64(d.Info().MinStorageBufferAlign)) / 4
}

// wg1D is the workgroup size of the one-dimensional elementwise shaders
// (shaders/elementwise.glsl).
const wg1D = 256

// grid1D covers n invocations with 256-wide workgroups on a 2-D grid whose x
// extent stays within the device limit.
func grid1D(d *gpu.Device, n int64) [3]uint32 {
	groups := (n + wg1D - 1) / wg1D
	maxX := int64(d.Info().MaxWorkgroupCount[0])
	if groups <= maxX {
		return [3]uint32{uint32(groups), 1, 1}
	}
	y := (groups + maxX - 1) / maxX
	x := (groups + y - 1) / y
	return [3]uint32{uint32(x), uint32(y), 1}
}

// kernel declares a shader by name with its bindings and push-constant size.
func kernel(name string, pushWords int, bindings ...gpu.BindingKind) *gpu.Kernel {
	return &gpu.Kernel{Name: name, SPIRV: shaders.SPIRV(name), Bindings: bindings, PushWords: pushWords}
}

// f32 returns the bits of v for a push constant.
func f32(v float32) uint32 { return math.Float32bits(v) }

// pipeline returns the device's pipeline for k, with the op name on errors.
func pipeline(d *gpu.Device, op string, k *gpu.Kernel, spec ...uint32) (*gpu.Pipeline, error) {
	p, err := d.Pipeline(k, spec...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return p, nil
}

// chunks calls f for consecutive [lo, hi) pieces of [0, n) of at most max
// elements each, so that elementwise ops can cover arrays larger than one
// storage binding may hold.
func chunks(n, max int64, f func(lo, hi int64) error) error {
	for lo := int64(0); lo < n; lo += max {
		hi := lo + max
		if hi > n {
			hi = n
		}
		if err := f(lo, hi); err != nil {
			return err
		}
	}
	return nil
}
