// Package kernels launches the engine's compute shaders. One file per op
// family holds the kernel declaration, its Go launch wrapper (shapes in the
// signature, a comment with each operand's layout), its float64 CPU reference
// and, beside it, the test comparing the two.
//
// Wrappers record into a gpu.Recorder and never allocate device memory
// behind the caller's back; scratch space, where an op needs it, is a
// parameter. Operands are Mem values: arrays at an element offset inside a
// buffer, so that views of larger tensors need no copies. Elements are
// 4-byte float32 (or int32) values, except where an op documents that it
// reads 16-bit floats (the matrix product's B operand, the embedding
// table): frozen weights stored as float16 or bfloat16, widened to fp32 as
// they are read. Every other operand of a 16-bit type is an error.
package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/internal/half"
	"github.com/shlpt-vk/shlpt-vk/shaders"
)

// ElemType is the storage type of a Mem's elements.
type ElemType uint8

const (
	// Elem32 is a 4-byte element: float32 (or int32 for ids). The zero
	// value, so that Mem{Buf: b} is an fp32 array.
	Elem32 ElemType = iota
	// ElemF16 is an IEEE binary16 (float16) element.
	ElemF16
	// ElemBF16 is a bfloat16 element (the upper half of a float32).
	ElemBF16
)

// Size is the element size in bytes.
func (t ElemType) Size() int64 {
	if t == ElemF16 || t == ElemBF16 {
		return 2
	}
	return 4
}

// Is16 reports a 16-bit floating-point type.
func (t ElemType) Is16() bool { return t.Size() == 2 }

func (t ElemType) String() string {
	switch t {
	case Elem32:
		return "32-bit"
	case ElemF16:
		return "f16"
	case ElemBF16:
		return "bf16"
	}
	return fmt.Sprintf("elemtype(%d)", uint8(t))
}

// Round returns the value nearest to v that the type stores, ties to even,
// as uploads round: float32 for Elem32, float16 or bfloat16 (widened back)
// for the others. The float64 references round their 16-bit inputs with it.
func (t ElemType) Round(v float64) float64 {
	f := float32(v)
	switch t {
	case ElemF16:
		return float64(half.F16ToFloat32(half.F16(f)))
	case ElemBF16:
		return float64(half.BF16ToFloat32(half.BF16(f)))
	}
	return float64(f)
}

// Mem is an array of elements of type Type on the device: element i is at
// byte Type.Size()·(Off+i) of Buf.
type Mem struct {
	Buf  *gpu.Buffer
	Off  int64    // in elements
	Type ElemType // the zero value: 4-byte elements
}

// At returns the view starting k elements further.
func (m Mem) At(k int64) Mem { return Mem{Buf: m.Buf, Off: m.Off + k, Type: m.Type} }

// Whole views a buffer of 4-byte elements from its start.
func Whole(b *gpu.Buffer) Mem { return Mem{Buf: b} }

// Len is the number of elements from Off to the end of the buffer.
func (m Mem) Len() int64 {
	if m.Buf == nil {
		return 0
	}
	return m.Buf.Size()/m.Type.Size() - m.Off
}

func (m Mem) String() string {
	if m.Buf == nil {
		return "nil"
	}
	if m.Type != Elem32 {
		return fmt.Sprintf("%v+%d %v", m.Buf, m.Off, m.Type)
	}
	return fmt.Sprintf("%v+%d", m.Buf, m.Off)
}

// check returns an error unless m is an array of 4-byte elements holding
// at least n elements.
func (m Mem) check(op, name string, n int64) error {
	if m.Type != Elem32 {
		return fmt.Errorf("%s: %s holds %v elements; only 32-bit ones are accepted", op, name, m.Type)
	}
	return m.checkAny(op, name, n)
}

// check16 is check for an operand that may also hold 16-bit floats.
func (m Mem) check16(op, name string, n int64) error {
	if m.Type != Elem32 && !m.Type.Is16() {
		return fmt.Errorf("%s: %s holds elements of unknown type %v", op, name, m.Type)
	}
	return m.checkAny(op, name, n)
}

func (m Mem) checkAny(op, name string, n int64) error {
	if m.Buf == nil {
		return fmt.Errorf("%s: %s is nil", op, name)
	}
	if m.Buf.Freed() {
		return fmt.Errorf("%s: %s (%v) was freed", op, name, m.Buf)
	}
	size := m.Buf.Size() / m.Type.Size()
	if m.Off < 0 || n < 0 || m.Off+n > size {
		return fmt.Errorf("%s: %s needs %d elements at offset %d but its buffer holds %d", op, name, n, m.Off, size)
	}
	return nil
}

// span binds n elements of m as a storage buffer. The binding starts at the
// aligned byte offset at or below m.Off and ends on a 4-byte boundary (16-bit
// elements are read as 32-bit words); the returned shift is the element
// index of m.Off inside the binding, to be passed to the shader.
func span(d *gpu.Device, m Mem, n int64) (gpu.Binding, uint32) {
	align := int64(d.Info().MinStorageBufferAlign)
	if align < 4 {
		align = 4
	}
	es := m.Type.Size()
	byteOff := es * m.Off
	start := byteOff / align * align
	end := (byteOff + es*n + 3) &^ 3
	if end == start {
		end = start + 4
	}
	return m.Buf.Range(start, end-start), uint32((byteOff - start) / es)
}

// texelSpan binds n elements of m as a texel buffer of one element per
// texel (texel = 1) or four (texel = 4): R32F or RGBA32F texels for 4-byte
// elements, R16UI or RGBA16UI for 16-bit ones. The start is aligned down to
// the device's texel-offset alignment (and to 16 bytes), the end rounded up
// to a whole texel; shift is the element index of m.Off inside the view.
func texelSpan(d *gpu.Device, m Mem, n int64, texel int64) (gpu.Binding, uint32) {
	align := int64(d.Info().MinTexelBufferAlign)
	if align < 16 {
		align = 16
	}
	es := m.Type.Size()
	byteOff := es * m.Off
	start := byteOff / align * align
	end := byteOff + es*n
	tb := es * texel
	end = start + (end-start+tb-1)/tb*tb
	if end == start {
		end = start + tb
	}
	return m.Buf.Range(start, end-start), uint32((byteOff - start) / es)
}

// maxElems is the most 4-byte elements one storage binding may hold,
// leaving room for the alignment shift.
func maxElems(d *gpu.Device) int64 { return maxElemsOf(d, Elem32) }

// maxElemsOf is maxElems for elements of type t.
func maxElemsOf(d *gpu.Device, t ElemType) int64 {
	return (int64(d.Info().MaxStorageBufferRange) - int64(d.Info().MinStorageBufferAlign)) / t.Size()
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
