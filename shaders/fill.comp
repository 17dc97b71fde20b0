#version 450
// y[yoff + i] = value for i < n, four elements per invocation (one vec4
// store when yoff is a multiple of 4 and the group is whole).
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
	float value;
	uint yoff;
} p;

layout(std430, binding = 0) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 0) writeonly buffer Y { float y[]; };

void main() {
	uint i = 4u * linearIndex();
	if (i >= p.n) {
		return;
	}
	if (i + 4u <= p.n && (p.yoff & 3u) == 0u) {
		y4[(p.yoff + i) / 4u] = vec4(p.value);
		return;
	}
	for (uint k = i; k < min(i + 4u, p.n); k++) {
		y[p.yoff + k] = p.value;
	}
}
