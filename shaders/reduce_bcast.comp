#version 450
// Backward of sum and mean: dx[o, a, i] = scale * dy[o, i] over an
// (outer, axis, inner) dx, or dx += that with accumulate. Each invocation
// writes four neighbouring elements of dx; dy (and dx when accumulating) are
// read through texel buffers, RGBA32F when VEC4 (inner and offsets multiples
// of 4).
#include "elementwise.glsl"

layout(constant_id = 0) const bool VEC4 = true;

layout(push_constant) uniform Push {
	uint n; // outer * axis * inner
	uint axis;
	uint inner;
	uint dyoff;
	uint dxinoff;
	uint dxoff;
	float scale;
	uint accumulate;
} p;

layout(binding = 0) uniform samplerBuffer dy;
layout(binding = 1) uniform samplerBuffer dxin;
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };
layout(std430, binding = 2) writeonly buffer DX4 { vec4 dx4[]; };

void main() {
	uint e = 4u * linearIndex();
	if (e >= p.n) {
		return;
	}
	if (VEC4) {
		uint o = e / (p.axis * p.inner);
		uint i = e % p.inner;
		vec4 g = p.scale * texelFetch(dy, int((p.dyoff + o * p.inner + i) / 4u));
		if (p.accumulate != 0u) {
			g += texelFetch(dxin, int((p.dxinoff + e) / 4u));
		}
		dx4[(p.dxoff + e) / 4u] = g;
		return;
	}
	uint end = min(e + 4u, p.n);
	for (uint k = e; k < end; k++) {
		uint o = k / (p.axis * p.inner);
		uint i = k % p.inner;
		float g = p.scale * texelFetch(dy, int(p.dyoff + o * p.inner + i)).x;
		if (p.accumulate != 0u) {
			g += texelFetch(dxin, int(p.dxinoff + k)).x;
		}
		dx[p.dxoff + k] = g;
	}
}
