// Package half converts between float32 and the two 16-bit floating-point
// storage formats of frozen weights: IEEE 754 binary16 (float16, "f16") and
// bfloat16 ("bf16", the upper half of a float32). Narrowing rounds to the
// nearest representable value, ties to even, as PyTorch's .half() and
// .bfloat16() do; widening is exact.
package half

import "math"

// F16 rounds f to the nearest float16, ties to even. Values beyond the
// largest float16 (65504) round to ±Inf once they reach 65520, the point
// halfway to the next power of two; NaN stays NaN (quiet, sign kept).
func F16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00 | uint16(man>>13) // quiet NaN, payload top bits kept
		}
		return sign | 0x7c00
	}
	// Unbiased exponent; float16's bias is 15.
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal float16 (or zero): the value is man' · 2^-24 with the
		// implicit bit made explicit. Shift right by 14 - e + ... in one go.
		if e < -10 {
			return sign // below half the smallest subnormal: ±0
		}
		m := man | 0x800000
		shift := uint32(14 - e) // 24-bit mantissa to a 10-bit subnormal field
		return sign | uint16(roundShift(m, shift))
	}
	// Normal: keep 10 mantissa bits; a carry out of the mantissa bumps the
	// exponent (and can reach Inf), which the bit layout does by itself.
	v := uint32(e)<<10 | man>>13
	rest := man & 0x1fff
	if rest > 0x1000 || (rest == 0x1000 && v&1 != 0) {
		v++
	}
	return sign | uint16(v)
}

// roundShift returns m >> shift rounded to nearest, ties to even.
func roundShift(m, shift uint32) uint32 {
	if shift >= 32 {
		return 0
	}
	v := m >> shift
	rest := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rest > half || (rest == half && v&1 != 0) {
		v++
	}
	return v
}

// F16ToFloat32 widens a float16 exactly.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal: normalize.
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}

// BF16 rounds f to the nearest bfloat16, ties to even. Values that round
// beyond the largest bfloat16 become ±Inf; NaN stays NaN (quiet, sign
// kept).
func BF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToFloat32 widens a bfloat16 exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// MaxF16 is the largest finite float16.
const MaxF16 = 65504
