// Widening of 16-bit floating-point weights (float16 or bfloat16) to fp32
// with integer operations and unpackHalf2x16 only, so the shaders that read
// them need neither 16-bit storage nor fp16 arithmetic. Shaders compiled
// with -DW16 (the *_w16 variants of the Makefile) include this file and
// choose the format with a specialization constant BF16.
//
// h holds one 16-bit value in its low bits: bfloat16 is the upper half of a
// float32, float16 is converted exactly (subnormals, infinities and NaN
// included).

float widen16(uint h, bool bf16) {
	return bf16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

vec4 widen16x4(uvec4 h, bool bf16) {
	if (bf16) {
		return uintBitsToFloat(h << 16);
	}
	return vec4(unpackHalf2x16(h.x | (h.y << 16)), unpackHalf2x16(h.z | (h.w << 16)));
}

// half16 returns the 16-bit value e of an array of 32-bit words w holding
// two values each, the lower half first (little-endian order): the value of
// word e >> 1.
uint half16(uint w, uint e) {
	return (e & 1u) != 0u ? w >> 16 : w & 0xffffu;
}
