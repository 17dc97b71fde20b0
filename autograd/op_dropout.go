package autograd

import "github.com/shlpt-vk/shlpt-vk/kernels"

// NewSeed returns a dropout seed: a one-element int32 tensor that
// AdvanceSeed moves on by one step on the device.
func (e *Engine) NewSeed(v uint32) *Tensor { return e.FromInt32([]int32{int32(v)}, 1) }

// AdvanceSeed moves a dropout seed on by one (on the device, so that a
// captured program draws fresh masks on every run).
func AdvanceSeed(seed *Tensor) {
	e := seed.e
	if !e.ok() {
		return
	}
	if err := seed.usable("advance seed"); err != nil {
		e.fail(err)
		return
	}
	e.fail(kernels.DropoutTick(e.rec, seed.Mem()))
	e.afterDispatch()
}

// Dropout zeroes each element of x with probability p and scales the rest
// by 1/(1−p). The mask is a function of the seed's current value and site
// (a number distinguishing dropout layers); backward reuses it, from a copy
// of the seed taken now, so the seed may advance before backward runs.
func Dropout(x *Tensor, p float32, seed *Tensor, site uint32) *Tensor {
	e := x.e
	const op = "dropout"
	if !e.inputsOK(op, x) {
		return e.poisoned(x.shape, F32)
	}
	if !e.seedOK(op, seed) {
		return e.poisoned(x.shape, F32)
	}
	n := int64(x.Len())
	out := e.newTensor(op, F32, x.shape...)
	if e.ok() {
		e.fail(kernels.Dropout(e.rec, out.Mem(), x.Mem(), n, p, seed.Mem(), site, false))
		e.afterDispatch()
	}
	if e.needsGrad(x) {
		kept := e.keepSeed(op, seed)
		e.record(op, out, []*Tensor{x}, []*Tensor{kept}, func(g *Tensor) {
			dst, acc := e.gradDst(x)
			if e.ok() {
				e.fail(kernels.Dropout(e.rec, dst, g.Mem(), n, p, kept.Mem(), site, acc))
			}
		})
		kept.Release()
	}
	return out
}

// seedOK reports whether seed is a usable dropout seed (one int32), failing
// the engine with op's name otherwise.
func (e *Engine) seedOK(op string, seed *Tensor) bool {
	if err := seed.usable(op); err != nil || seed.dtype != I32 || seed.Len() != 1 {
		e.failf("%s: seed %v must be one int32 (%v)", op, seed, err)
		return false
	}
	return true
}

// keepSeed returns a copy of seed's current value, from which a backward
// pass redraws its forward mask after the seed itself has moved on.
func (e *Engine) keepSeed(op string, seed *Tensor) *Tensor {
	kept := e.newTensor(op, I32, 1)
	if e.ok() {
		e.fail(kernels.Copy(e.rec, kept.Mem(), seed.Mem(), 1))
	}
	return kept
}
