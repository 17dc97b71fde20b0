#version 450
// y[yoff + i] = x[xoff + i] for i < n; each invocation copies four elements.
// x is read through a texel buffer, which lavapipe serves several times
// faster than storage-buffer loads: RGBA32F texels when VEC4 (xoff and yoff
// multiples of 4), float texels otherwise.
#include "elementwise.glsl"

layout(constant_id = 0) const bool VEC4 = true;

layout(push_constant) uniform Push {
	uint n;
	uint xoff;
	uint yoff;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(std430, binding = 1) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

void main() {
	uint i = 4u * linearIndex();
	if (i >= p.n) {
		return;
	}
	if (VEC4) {
		if (i + 4u <= p.n) {
			y4[(p.yoff + i) / 4u] = texelFetch(x, int((p.xoff + i) / 4u));
			return;
		}
		vec4 t = texelFetch(x, int((p.xoff + i) / 4u));
		for (uint k = 0u; i + k < p.n; k++) {
			y[p.yoff + i + k] = t[k];
		}
		return;
	}
	uint end = min(i + 4u, p.n);
	for (uint k = i; k < end; k++) {
		y[p.yoff + k] = texelFetch(x, int(p.xoff + k)).x;
	}
}
