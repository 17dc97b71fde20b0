package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is a safetensors element type, spelled as in the file header.
type DType string

// Element types. The reader accepts all of them; conversion to float32 covers
// the floating types and conversion to int64 the integer types and BOOL.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// Size returns the bytes per element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == F64 || d == F32 || d == F16 || d == BF16
}

// IsInt reports whether d is an integer type or BOOL.
func (d DType) IsInt() bool {
	switch d {
	case I64, I32, I16, I8, U64, U32, U16, U8, BOOL:
		return true
	}
	return false
}

// Float16ToFloat32 converts IEEE 754 binary16 bits to float32 exactly
// (subnormals, infinities and NaN payloads included).
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN; keep the payload.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: mant·2^-24, a normal float32. Shift the mantissa up
	// until its leading one reaches the implicit-bit position.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// BFloat16ToFloat32 converts bfloat16 bits to float32 exactly.
func BFloat16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// decodeFloat32 converts n little-endian elements of type d from src into
// dst[:n]. The caller has checked that d is a float type and the sizes.
func decodeFloat32(dst []float32, src []byte, d DType) {
	le := binary.LittleEndian
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = Float16ToFloat32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BFloat16ToFloat32(le.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	default:
		panic("safetensors: decodeFloat32 on " + string(d))
	}
}

// decodeInt64 converts the elements of an integer tensor to int64. It fails
// only for U64 values above math.MaxInt64, naming the element index.
func decodeInt64(dst []int64, src []byte, d DType) error {
	le := binary.LittleEndian
	switch d {
	case I64:
		for i := range dst {
			dst[i] = int64(le.Uint64(src[8*i:]))
		}
	case U64:
		for i := range dst {
			v := le.Uint64(src[8*i:])
			if v > math.MaxInt64 {
				return fmt.Errorf("element %d (%d) does not fit in int64", i, v)
			}
			dst[i] = int64(v)
		}
	case I32:
		for i := range dst {
			dst[i] = int64(int32(le.Uint32(src[4*i:])))
		}
	case U32:
		for i := range dst {
			dst[i] = int64(le.Uint32(src[4*i:]))
		}
	case I16:
		for i := range dst {
			dst[i] = int64(int16(le.Uint16(src[2*i:])))
		}
	case U16:
		for i := range dst {
			dst[i] = int64(le.Uint16(src[2*i:]))
		}
	case I8:
		for i := range dst {
			dst[i] = int64(int8(src[i]))
		}
	case U8, BOOL:
		for i := range dst {
			dst[i] = int64(src[i])
		}
	default:
		panic("safetensors: decodeInt64 on " + string(d))
	}
	return nil
}
