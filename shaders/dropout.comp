#version 450
// y[i] = keep(i) ? x[i] / (1 - p) : 0 for i < n. Used for the forward pass
// and, on the output gradient, for the backward pass (the same mask).
// ACCUMULATE adds into y instead of overwriting it. Each invocation handles
// four elements; with VEC4 (x, y offsets multiples of 4) x and the old y are
// read as RGBA32F texels and y written as one vec4. Arrays larger than one
// binding are processed in chunks; base is the global index of this chunk's
// first element, so that the mask does not depend on the chunking.
#include "elementwise.glsl"
#include "dropout.glsl"

layout(constant_id = 0) const bool ACCUMULATE = false;
layout(constant_id = 1) const bool VEC4 = false;

layout(push_constant) uniform Push {
	uint n;
	float p;
	uint site;
	uint xoff;
	uint yoff;
	uint seedoff;
	uint yinoff;
	uint base;
} pc;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer yin; // y's old values (ACCUMULATE)
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 3) readonly buffer Seed { uint seed[]; };

float fetch(samplerBuffer b, uint off, uint i) {
	return VEC4 ? texelFetch(b, int((off + i) / 4u))[(off + i) % 4u] : texelFetch(b, int(off + i)).x;
}

void main() {
	uint i = 4u * linearIndex();
	if (i >= pc.n) {
		return;
	}
	uint s = seed[pc.seedoff];
	float scale = 1.0 / (1.0 - pc.p);
	if (VEC4 && i + 4u <= pc.n) {
		vec4 v = texelFetch(x, int((pc.xoff + i) / 4u));
		uint g = pc.base + i;
		vec4 keep = vec4(dropKeep(s, pc.site, g, pc.p), dropKeep(s, pc.site, g + 1u, pc.p),
		                 dropKeep(s, pc.site, g + 2u, pc.p), dropKeep(s, pc.site, g + 3u, pc.p));
		v = v * keep * scale;
		if (ACCUMULATE) {
			v += texelFetch(yin, int((pc.yinoff + i) / 4u));
		}
		y4[(pc.yoff + i) / 4u] = v;
		return;
	}
	for (uint k = i; k < min(i + 4u, pc.n); k++) {
		float v = dropKeep(s, pc.site, pc.base + k, pc.p) ? fetch(x, pc.xoff, k) * scale : 0.0;
		if (ACCUMULATE) {
			v += fetch(yin, pc.yinoff, k);
		}
		y[pc.yoff + k] = v;
	}
}
