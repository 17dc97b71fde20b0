#version 450
// y[yoff + i] += alpha * x[xoff + i] for i < n.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
	float alpha;
	uint xoff;
	uint yoff;
} p;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Y { float y[]; };

void main() {
	uint i = linearIndex();
	if (i < p.n) {
		y[p.yoff + i] += p.alpha * x[p.xoff + i];
	}
}
