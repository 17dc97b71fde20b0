// Package autograd is a small reverse-mode automatic differentiation on the
// Vulkan engine. Ops record GPU dispatches as they are called (nothing runs
// until the engine flushes or a value is read) and, when gradients are
// wanted, a node on the tape that knows how to send gradients back.
//
// Errors are sticky, as in bufio.Scanner: an op that fails (bad shapes, a
// tensor used after release, an out-of-memory device) records the first
// error on the engine and returns a placeholder with the shape its output
// would have had; later ops do nothing; Err, Backward, Sync and reads
// return the error. Model code stays readable and checks once per step.
//
// One file per op (op_*.go) pairs its forward and backward with the kernels
// they launch.
package autograd

import (
	"errors"
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// flushEvery bounds the dispatches recorded before work is submitted, so the
// device starts while the host keeps recording.
const flushEvery = 4096

// Engine records ops on one device and keeps the tape.
type Engine struct {
	dev     *gpu.Device
	rec     *gpu.Recorder
	arena   *gpu.Arena // where tensors come from; nil means the device's default
	tape    []*node
	noGrad  int
	err     error
	profile bool

	capturing bool
	pending   []*gpu.Recorder // profiled submissions whose timings are not read yet

	scope     *Scope // the innermost open scope (scope.go)
	untracked int    // > 0 while new handles join no scope
	timings   []gpu.Timing
}

// New returns an engine on d.
func New(d *gpu.Device) *Engine {
	return &Engine{dev: d, rec: d.NewRecorder(false)}
}

// Device is the engine's device.
func (e *Engine) Device() *gpu.Device { return e.dev }

// Err returns the first error any op met.
func (e *Engine) Err() error { return e.err }

// ClearErr forgets a recorded error, dropping what was recorded since the
// last flush and the tape, so the engine can be used again.
func (e *Engine) ClearErr() {
	e.err = nil
	e.newRecorder()
	e.dropTape()
}

// newRecorder discards what was recorded and not submitted, and starts a
// new recording.
func (e *Engine) newRecorder() {
	e.rec.Discard()
	e.rec = e.dev.NewRecorder(e.profile)
}

func (e *Engine) ok() bool { return e.err == nil }

// Fail records err as the engine's error (the first one wins), for code
// built on the ops that finds a problem of its own.
func (e *Engine) Fail(err error) { e.fail(err) }

func (e *Engine) fail(err error) {
	if e.err == nil && err != nil {
		e.err = err
	}
}

// failf records an error for op.
func (e *Engine) failf(format string, a ...any) { e.fail(fmt.Errorf(format, a...)) }

// poisoned is what an op returns after an error: a placeholder with the
// shape and type the op's output would have had, and no memory. Every op on
// it does nothing, and reading it returns the engine's first error, so code
// after a failed op runs on (shapes stay consistent) until it checks.
func (e *Engine) poisoned(shape []int, dt DType) *Tensor {
	return &Tensor{e: e, st: &storage{}, shape: append([]int(nil), shape...), dtype: dt, released: true}
}

// Placeholder returns what an op returns after an error: a tensor of the
// given shape without memory, on which ops do nothing and whose reads
// return the engine's first error. Code built on the ops (a model whose
// forward pass failed) uses it to return outputs of the right shapes.
func (e *Engine) Placeholder(dt DType, shape ...int) *Tensor { return e.poisoned(shape, dt) }

// Profile turns per-dispatch timestamps on or off for later recordings.
func (e *Engine) Profile(on bool) {
	e.profile = on
	if e.rec.Dispatches() == 0 {
		e.newRecorder()
	}
}

// Timings returns per-dispatch device times of the profiled work since the
// last call, in recording order.
func (e *Engine) Timings() []gpu.Timing {
	t := e.timings
	e.timings = nil
	return t
}

// Recorder returns the recorder ops record into (for kernels called
// directly alongside autograd ops).
func (e *Engine) Recorder() *gpu.Recorder { return e.rec }

// afterDispatch flushes long recordings.
func (e *Engine) afterDispatch() {
	if !e.capturing && e.rec.Dispatches() >= flushEvery {
		e.fail(e.Flush())
	}
}

// Flush submits what was recorded, without waiting.
func (e *Engine) Flush() error {
	if e.capturing {
		return errors.New("autograd: Flush during Capture")
	}
	if err := e.rec.Err(); err != nil {
		e.fail(err)
	}
	if e.err != nil {
		e.newRecorder()
		return e.err
	}
	rec := e.rec
	e.rec = e.dev.NewRecorder(e.profile)
	if err := rec.Submit(); err != nil {
		e.fail(err)
		return err
	}
	if e.profile {
		// Timings arrive when the work finishes; keep the recorder to ask later.
		e.pending = append(e.pending, rec)
	}
	return nil
}

// Sync submits what was recorded and waits for the device.
func (e *Engine) Sync() error {
	if err := e.Flush(); err != nil {
		return err
	}
	if err := e.dev.Wait(); err != nil {
		e.fail(err)
		return err
	}
	for _, r := range e.pending {
		e.timings = append(e.timings, r.Timings()...)
	}
	e.pending = nil
	return nil
}

// NoGrad turns gradient recording off until the returned function is
// called: `defer e.NoGrad()()`.
func (e *Engine) NoGrad() (restore func()) {
	e.noGrad++
	return func() { e.noGrad-- }
}

// GradEnabled reports whether ops record the tape.
func (e *Engine) GradEnabled() bool { return e.noGrad == 0 }

// alloc returns new storage of n elements from the current arena.
func (e *Engine) alloc(op string, n int, dt DType) *storage {
	if n <= 0 {
		n = 1
	}
	var b *gpu.Buffer
	var err error
	if e.arena != nil {
		b, err = e.arena.Alloc(int64(n * dt.Size()))
	} else {
		b, err = e.dev.Alloc(int64(n * dt.Size()))
	}
	if err != nil {
		e.fail(fmt.Errorf("%s: %w", op, err))
		return nil
	}
	return &storage{buf: b, refs: 1}
}

func (e *Engine) unref(st *storage) {
	if st == nil || st.buf == nil {
		return
	}
	st.refs--
	if st.refs == 0 {
		st.buf.Free()
		st.buf = nil
	}
}

// newTensor allocates an uninitialized tensor for an op's output.
func (e *Engine) newTensor(op string, dt DType, shape ...int) *Tensor {
	st := e.alloc(op, numel(shape), dt)
	if st == nil {
		return e.poisoned(shape, dt)
	}
	return e.track(&Tensor{e: e, st: st, shape: append([]int(nil), shape...), dtype: dt})
}

// Empty returns an uninitialized leaf tensor.
func (e *Engine) Empty(dt DType, shape ...int) *Tensor {
	t := e.newTensor("empty", dt, shape...)
	t.leaf = true
	return t
}

// Full returns a leaf filled with v.
func (e *Engine) Full(v float32, shape ...int) *Tensor {
	t := e.Empty(F32, shape...)
	if e.ok() {
		e.fail(kernels.Fill(e.rec, t.Mem(), int64(t.Len()), v))
		e.afterDispatch()
	}
	return t
}

// Zeros returns a leaf of zeros.
func (e *Engine) Zeros(shape ...int) *Tensor { return e.Full(0, shape...) }

// FromFloat32 returns a leaf holding data. The data is written at once
// (waiting for the device if earlier work is in flight).
func (e *Engine) FromFloat32(data []float32, shape ...int) *Tensor {
	return e.FromFloat32As(F32, data, shape...)
}

// FromFloat32As returns a leaf of type dt (F32, F16 or BF16) holding data,
// rounded to dt (to nearest, ties to even). A finite value beyond float16's
// range is an error rather than an infinity.
func (e *Engine) FromFloat32As(dt DType, data []float32, shape ...int) *Tensor {
	if dt != F32 && !dt.Is16() {
		e.failf("tensor from floats: type %v is not a floating-point type", dt)
		return e.poisoned(shape, dt)
	}
	t := e.Empty(dt, shape...)
	if len(data) != numel(shape) {
		e.failf("tensor from %d floats: shape %v needs %d", len(data), shapeString(shape), numel(shape))
		return t
	}
	e.fail(t.WriteFloat32(data))
	return t
}

// FromInt32 returns an int32 leaf holding data.
func (e *Engine) FromInt32(data []int32, shape ...int) *Tensor {
	t := e.Empty(I32, shape...)
	if len(data) != numel(shape) {
		e.failf("tensor from %d ints: shape %v needs %d", len(data), shapeString(shape), numel(shape))
		return t
	}
	e.fail(t.WriteInt32(data))
	return t
}

// Param returns a trainable leaf holding data.
func (e *Engine) Param(name string, data []float32, shape ...int) *Tensor {
	t := e.FromFloat32(data, shape...)
	t.name = name
	t.requiresGrad = true
	return t
}

func (t *Tensor) sync(op string) error {
	e := t.e
	if e.capturing {
		return fmt.Errorf("%s of %v during Capture: values exist only when the program runs", op, t)
	}
	// After a failed op the first error is the answer: t may be one of the
	// placeholders ops return then.
	if e.err != nil {
		return e.err
	}
	if err := t.usable(op); err != nil {
		return err
	}
	return e.Sync()
}

// Float32s waits for the work recorded so far and returns t's values; those
// of a 16-bit tensor are widened exactly.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.dtype != F32 && !t.dtype.Is16() {
		return nil, fmt.Errorf("Float32s of %v", t)
	}
	if err := t.sync("read"); err != nil {
		return nil, err
	}
	out := make([]float32, t.Len())
	if t.dtype.Is16() {
		h := make([]uint16, t.Len())
		if err := gpu.ReadSlice(t.st.buf, t.off, h); err != nil {
			return nil, err
		}
		widen(t.dtype, out, h)
		return out, nil
	}
	return out, gpu.ReadSlice(t.st.buf, t.off, out)
}

// Int32s waits for the work recorded so far and returns t's values.
func (t *Tensor) Int32s() ([]int32, error) {
	if t.dtype != I32 {
		return nil, fmt.Errorf("Int32s of %v", t)
	}
	if err := t.sync("read"); err != nil {
		return nil, err
	}
	out := make([]int32, t.Len())
	return out, gpu.ReadSlice(t.st.buf, t.off, out)
}

// Item returns the single value of a one-element tensor.
func (t *Tensor) Item() (float32, error) {
	if t.Len() != 1 {
		return 0, fmt.Errorf("Item of %v", t)
	}
	v, err := t.Float32s()
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// WriteFloat32 overwrites t's values (after recorded work has run). Into a
// 16-bit tensor the values are rounded to nearest, ties to even; a finite
// value beyond float16's range is an error naming the tensor (it would
// become an infinity).
func (t *Tensor) WriteFloat32(data []float32) error {
	if (t.dtype != F32 && !t.dtype.Is16()) || len(data) != t.Len() {
		return fmt.Errorf("write of %d floats into %v", len(data), t)
	}
	if err := t.sync("write"); err != nil {
		return err
	}
	if t.dtype.Is16() {
		h, err := narrow(t.dtype, data)
		if err != nil {
			return fmt.Errorf("%v: %w", t, err)
		}
		return gpu.WriteSlice(t.st.buf, t.off, h)
	}
	return gpu.WriteSlice(t.st.buf, t.off, data)
}

// WriteInt32 overwrites t's values (after recorded work has run).
func (t *Tensor) WriteInt32(data []int32) error {
	if t.dtype != I32 || len(data) != t.Len() {
		return fmt.Errorf("write of %d ints into %v", len(data), t)
	}
	if err := t.sync("write"); err != nil {
		return err
	}
	return gpu.WriteSlice(t.st.buf, t.off, data)
}

// Program is a captured, replayable sequence of ops (see Capture).
type Program struct {
	e     *Engine
	prog  *gpu.Program
	arena *gpu.Arena
}

// Capture records fn into a Program instead of running it. Everything fn
// allocates comes from memory owned by the program, so tensors created
// inside stay valid (with the values of the last run) until Release. Data
// that changes between runs is written into tensors created before Capture.
// fn must not read tensor values.
func (e *Engine) Capture(fn func() error) (*Program, error) {
	if e.capturing {
		return nil, errors.New("autograd: nested Capture")
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	e.capturing = true
	e.arena = e.dev.NewArena("program")
	prevRec := e.rec
	e.rec = e.dev.NewRecorder(e.profile)
	arena := e.arena
	err := fn()
	e.capturing = false
	e.arena = nil
	rec := e.rec
	e.rec = prevRec
	if err == nil {
		err = e.err
	}
	if err == nil {
		err = rec.Err()
	}
	if err != nil {
		// Nothing recorded runs: the recording lets go of the program's
		// memory, then the arena returns it.
		rec.Discard()
		if rerr := arena.Release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		e.fail(err)
		return nil, err
	}
	p, err := rec.Compile()
	if err != nil {
		if rerr := arena.Release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		e.fail(err)
		return nil, err
	}
	return &Program{e: e, prog: p, arena: arena}, nil
}

// Run submits the program (recorded work of the engine is flushed first).
func (p *Program) Run() error {
	if err := p.e.Flush(); err != nil {
		return err
	}
	return p.prog.Run()
}

// Dispatches is the number of dispatches in the program.
func (p *Program) Dispatches() int { return p.prog.Dispatches() }

// Timings are the per-dispatch times of the last finished profiled run.
func (p *Program) Timings() []gpu.Timing { return p.prog.Timings() }

// Release frees the program and all memory it allocated.
func (p *Program) Release() error {
	err := p.prog.Release()
	if e := p.arena.Release(); e != nil && err == nil {
		err = e
	}
	return err
}
