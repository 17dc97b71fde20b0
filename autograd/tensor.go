package autograd

import (
	"fmt"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// DType is the element type of a tensor's storage. Arithmetic is fp32
// throughout; other storage types are converted by the kernels that read them.
type DType uint8

// Element types. Ops check the types they accept and report others as
// errors. F16 and BF16 are storage for frozen weights only: the ops that
// read weights (Linear's weight, MatMul's b, Embedding's table, and so the
// tied LM head) accept them when they do not require a gradient, widening
// them to fp32 as they read; every other op refuses them, and a 16-bit
// tensor that requires a gradient is an error naming it.
const (
	F32  DType = iota
	I32        // token ids and labels
	F16        // IEEE binary16 storage (weights)
	BF16       // bfloat16 storage (weights)
)

func (t DType) String() string {
	switch t {
	case F32:
		return "f32"
	case I32:
		return "i32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(t))
}

// Size is the element size in bytes.
func (t DType) Size() int {
	if t.Is16() {
		return 2
	}
	return 4
}

// Is16 reports a 16-bit floating-point storage type (F16 or BF16).
func (t DType) Is16() bool { return t == F16 || t == BF16 }

// elemType is the kernels' name for the storage type.
func (t DType) elemType() kernels.ElemType {
	switch t {
	case F16:
		return kernels.ElemF16
	case BF16:
		return kernels.ElemBF16
	}
	return kernels.Elem32
}

// storage is device memory shared by a tensor and its views. refs counts
// tensor handles and tape references; the memory is freed when it drops to 0.
type storage struct {
	buf  *gpu.Buffer
	refs int
}

// Tensor is an n-dimensional array on the device: a row-major, contiguous
// range of a storage buffer. It may be a leaf (created by the user: inputs
// and parameters) or the output of an op recorded on the engine's tape.
//
// Handles are reference counted by hand: an op's output belongs to the
// caller, who calls Release when done with it. The tape keeps its own
// references to what backward needs, so releasing a tensor early never
// breaks backward; memory is reused as soon as nobody needs it.
type Tensor struct {
	e        *Engine
	st       *storage
	off      int64 // element offset into the storage
	shape    []int
	dtype    DType
	name     string
	released bool

	requiresGrad bool
	leaf         bool
	grad         *Tensor
	node         *node // op that produced this tensor, nil for leaves
}

// Engine is the engine the tensor belongs to.
func (t *Tensor) Engine() *Engine { return t.e }

// Shape returns a copy of the dimensions.
func (t *Tensor) Shape() []int { return append([]int(nil), t.shape...) }

// Dim returns dimension i; negative i counts from the end. An axis the
// tensor does not have is an error recorded on the engine, and Dim returns 0.
func (t *Tensor) Dim(i int) int {
	d, ok := t.dim(i)
	if !ok {
		t.e.failf("dim %d of %v: no such axis", i, t)
	}
	return d
}

// dim returns dimension i (negative counts from the end), or 0 and false
// when t has no such axis.
func (t *Tensor) dim(i int) (int, bool) {
	if i < 0 {
		i += len(t.shape)
	}
	if i < 0 || i >= len(t.shape) {
		return 0, false
	}
	return t.shape[i], true
}

// d is dim without the flag: 0 for a missing axis. Ops use it to describe
// their output's shape before their inputs are checked.
func (t *Tensor) d(i int) int {
	v, _ := t.dim(i)
	return v
}

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// DType is the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Len is the number of elements.
func (t *Tensor) Len() int { return numel(t.shape) }

// Name is the tensor's name (for parameters and error messages).
func (t *Tensor) Name() string { return t.name }

// SetName names the tensor and returns it.
func (t *Tensor) SetName(n string) *Tensor { t.name = n; return t }

// RequiresGrad reports whether gradients flow to this tensor.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// SetRequiresGrad marks a leaf as trainable (or frozen). Frozen tensors get
// no gradient and ops skip computing one for them. Only f32 tensors can be
// trained: marking a 16-bit tensor trainable records an error naming it on
// the engine and leaves it frozen.
func (t *Tensor) SetRequiresGrad(v bool) *Tensor {
	if v && t.dtype != F32 {
		t.e.failf("%v cannot require a gradient: only f32 tensors are trained (16-bit storage is for frozen weights)", t)
		return t
	}
	if t.leaf {
		t.requiresGrad = v
	}
	return t
}

// Grad returns the accumulated gradient, or nil.
func (t *Tensor) Grad() *Tensor { return t.grad }

// ZeroGrad drops the accumulated gradient.
func (t *Tensor) ZeroGrad() {
	if t.grad != nil {
		t.grad.Release()
		t.grad = nil
	}
}

// Mem is the tensor's device memory for kernels.
func (t *Tensor) Mem() kernels.Mem {
	return kernels.Mem{Buf: t.st.buf, Off: t.off, Type: t.dtype.elemType()}
}

// Buffer is the underlying device buffer (shared with views).
func (t *Tensor) Buffer() *gpu.Buffer { return t.st.buf }

// String describes the tensor: name, shape and type.
func (t *Tensor) String() string {
	if t == nil {
		return "<nil tensor>"
	}
	s := shapeString(t.shape)
	if t.dtype != F32 {
		s += " " + t.dtype.String()
	}
	if t.name != "" {
		return t.name + " " + s
	}
	return s
}

func shapeString(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = fmt.Sprint(d)
	}
	return "(" + strings.Join(parts, ",") + ")"
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Release drops this handle. The memory is freed once no handle and no
// recorded op needs it. Releasing twice, or releasing nil, does nothing.
func (t *Tensor) Release() {
	if t == nil || t.released {
		return
	}
	t.released = true
	t.e.unref(t.st)
	if t.leaf {
		t.ZeroGrad()
	}
}

// Released reports whether Release was called on this handle.
func (t *Tensor) Released() bool { return t.released }

// View returns a new handle on elements [start, start+numel(shape)) of t,
// sharing its memory. It is not differentiable; use Slice ops for that.
func (t *Tensor) View(start int, shape ...int) *Tensor {
	e := t.e
	if !e.ok() {
		return e.poisoned(shape, t.dtype)
	}
	if err := t.usable("view"); err != nil {
		e.fail(err)
		return e.poisoned(shape, t.dtype)
	}
	n := numel(shape)
	if start < 0 || start+n > t.Len() {
		e.fail(fmt.Errorf("view: elements [%d,%d) of %v", start, start+n, t))
		return e.poisoned(shape, t.dtype)
	}
	t.st.refs++
	return e.track(&Tensor{e: e, st: t.st, off: t.off + int64(start), shape: append([]int(nil), shape...), dtype: t.dtype})
}

// Reshape returns a view of t with another shape of the same size. The
// result shares memory and, when t requires grad, passes gradients through.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	e := t.e
	if numel(shape) != t.Len() {
		e.fail(fmt.Errorf("reshape: %v to %v changes the size", t, shapeString(shape)))
		return e.poisoned(shape, t.dtype)
	}
	return reshape(t, shape)
}

func (t *Tensor) usable(op string) error {
	if t == nil {
		return fmt.Errorf("%s: nil tensor", op)
	}
	if t.released {
		return fmt.Errorf("%s: tensor %v used after Release", op, t)
	}
	if t.st == nil || t.st.buf == nil || t.st.buf.Freed() {
		return fmt.Errorf("%s: tensor %v has no memory (freed)", op, t)
	}
	return nil
}
