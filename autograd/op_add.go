package autograd

import (
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

// Add returns a + b (same shapes).
func Add(a, b *Tensor) *Tensor {
	e := a.e
	out, ok := e.binarySameShape("add", a, b)
	if !ok {
		return out
	}
	e.fail(kernels.Add(e.rec, out.Mem(), a.Mem(), b.Mem(), int64(a.Len())))
	e.afterDispatch()
	if e.needsGrad(a, b) {
		e.record("add", out, []*Tensor{a, b}, nil, func(g *Tensor) {
			for _, x := range []*Tensor{a, b} {
				if x.requiresGrad {
					e.accumulateGrad(x, g.Mem())
				}
			}
		})
	}
	return out
}
