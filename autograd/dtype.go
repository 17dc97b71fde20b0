package autograd

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/internal/half"
)

// Conversions between float32 and the 16-bit storage types.

// narrow rounds data to dt (F16 or BF16), to nearest, ties to even. A
// finite value that would become an infinity in float16 is an error.
func narrow(dt DType, data []float32) ([]uint16, error) {
	h := make([]uint16, len(data))
	if dt == BF16 {
		for i, v := range data {
			h[i] = half.BF16(v)
		}
		return h, nil
	}
	for i, v := range data {
		h[i] = half.F16(v)
		if h[i]&0x7fff == 0x7c00 && !math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("element %d is %g, beyond float16's range (±%d): store it as bf16 or f32", i, v, half.MaxF16)
		}
	}
	return h, nil
}

// widen converts 16-bit values of type dt to float32, exactly.
func widen(dt DType, out []float32, h []uint16) {
	if dt == BF16 {
		for i, v := range h {
			out[i] = half.BF16ToFloat32(v)
		}
		return
	}
	for i, v := range h {
		out[i] = half.F16ToFloat32(v)
	}
}
