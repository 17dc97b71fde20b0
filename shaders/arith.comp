#version 450
// Elementwise arithmetic over n elements, four per invocation:
//   OP 0: y = a + b        OP 1: y = a * b
//   OP 2: y = alpha * a    OP 3: y = a * s[0]  (s a device scalar)
// With ROWVEC, b is a (C,) row broadcast over the rows of a (rows, C) a:
// element i of this dispatch uses b[(col0 + i) % C]. With accumulate set,
// y = yin + result (yin is y read through a texel view). y may alias a or b
// (in place): every element is read and written by the same invocation.
// Inputs are read through texel buffers, RGBA32F when VEC4 (offsets, C and
// col0 multiples of 4), float texels otherwise; y is written through a
// storage buffer.
#include "elementwise.glsl"
#include "arith_div.glsl"

layout(constant_id = 0) const uint OP = 0;
layout(constant_id = 1) const bool VEC4 = true;
layout(constant_id = 2) const bool ROWVEC = false;

layout(push_constant) uniform Push {
	uint n;
	uint aoff;
	uint boff;
	uint soff;
	uint yinoff;
	uint yoff;
	uint C;
	uint cM; // divMagic constants of C
	uint cSh;
	uint col0;
	float alpha;
	uint accumulate;
} p;

layout(binding = 0) uniform samplerBuffer a;
layout(binding = 1) uniform samplerBuffer b;
layout(binding = 2) uniform samplerBuffer s;
layout(binding = 3) uniform samplerBuffer yin;
layout(std430, binding = 4) writeonly buffer Y { float y[]; };
layout(std430, binding = 4) writeonly buffer Y4 { vec4 y4[]; };

vec4 combine(vec4 u, vec4 v) {
	if (OP == 0u) {
		return u + v;
	} else if (OP == 1u) {
		return u * v;
	} else if (OP == 2u) {
		return p.alpha * u;
	}
	return u * texelFetch(s, int(p.soff)).x;
}

uint bIndex(uint i) {
	if (!ROWVEC) {
		return p.boff + i;
	}
	uint c = p.col0 + i;
	return p.boff + c - divMagic(c, p.cM, p.cSh) * p.C;
}

void main() {
	uint i = 4u * linearIndex();
	if (i >= p.n) {
		return;
	}
	bool binary = OP <= 1u;
	if (VEC4) {
		vec4 u = texelFetch(a, int((p.aoff + i) / 4u));
		vec4 v = binary ? texelFetch(b, int(bIndex(i) / 4u)) : vec4(0.0);
		vec4 r = combine(u, v);
		if (p.accumulate != 0u) {
			r += texelFetch(yin, int((p.yinoff + i) / 4u));
		}
		if (i + 4u <= p.n) {
			y4[(p.yoff + i) / 4u] = r;
			return;
		}
		for (uint k = 0u; i + k < p.n; k++) {
			y[p.yoff + i + k] = r[k];
		}
		return;
	}
	uint end = min(i + 4u, p.n);
	for (uint k = i; k < end; k++) {
		float u = texelFetch(a, int(p.aoff + k)).x;
		float v = binary ? texelFetch(b, int(bIndex(k))).x : 0.0;
		float r = combine(vec4(u), vec4(v)).x;
		if (p.accumulate != 0u) {
			r += texelFetch(yin, int(p.yinoff + k)).x;
		}
		y[p.yoff + k] = r;
	}
}
