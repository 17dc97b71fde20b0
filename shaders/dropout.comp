#version 450
// y[i] = keep(i) ? x[i] / (1 - p) : 0 for i < n. Used for the forward pass
// and, on the output gradient, for the backward pass (the same mask).
// ACCUMULATE adds into y instead of overwriting it.
#include "elementwise.glsl"
#include "dropout.glsl"

layout(constant_id = 0) const bool ACCUMULATE = false;

layout(push_constant) uniform Push {
	uint n;
	float p;
	uint site;
	uint xoff;
	uint yoff;
	uint seedoff;
} pc;

layout(binding = 0) uniform samplerBuffer x;
layout(std430, binding = 1) buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer Seed { uint seed[]; };

void main() {
	uint i = linearIndex();
	if (i >= pc.n) {
		return;
	}
	float v = dropKeep(seed[pc.seedoff], pc.site, i, pc.p) ? texelFetch(x, int(pc.xoff + i)).x / (1.0 - pc.p) : 0.0;
	if (ACCUMULATE) {
		y[pc.yoff + i] += v;
	} else {
		y[pc.yoff + i] = v;
	}
}
