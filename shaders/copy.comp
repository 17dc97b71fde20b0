#version 450
// y[i] = x[i] for i < n, four floats per invocation (n4 = n/4 full vectors);
// the last n%4 elements are copied by the invocation with index n4.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
} p;

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer Y { vec4 y4[]; };
layout(std430, binding = 0) readonly buffer Xs { float x[]; };
layout(std430, binding = 1) writeonly buffer Ys { float y[]; };

void main() {
	uint i = linearIndex();
	uint n4 = p.n / 4u;
	if (i < n4) {
		y4[i] = x4[i];
	} else if (i == n4) {
		for (uint j = 4u * n4; j < p.n; j++) {
			y[j] = x[j];
		}
	}
}
