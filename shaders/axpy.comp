#version 450
// y[i] += alpha * x[i] for i < n.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
	float alpha;
} p;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Y { float y[]; };

void main() {
	uint i = linearIndex();
	if (i < p.n) {
		y[i] += p.alpha * x[i];
	}
}
