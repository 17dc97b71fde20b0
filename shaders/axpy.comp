#version 450
// y[yoff + i] += alpha * x[xoff + i] for i < n, four elements per
// invocation. x and the old y are read through float texel views (faster
// than storage-buffer loads on lavapipe); y is written through a storage
// buffer, as one vec4 when yoff is a multiple of 4 and the group is whole.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
	float alpha;
	uint xoff;
	uint yoff;
	uint yinoff;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer yin;
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

void main() {
	uint i = 4u * linearIndex();
	if (i >= p.n) {
		return;
	}
	if (i + 4u <= p.n && (p.yoff & 3u) == 0u) {
		int xi = int(p.xoff + i), yi = int(p.yinoff + i);
		vec4 a = vec4(texelFetch(x, xi).x, texelFetch(x, xi + 1).x, texelFetch(x, xi + 2).x, texelFetch(x, xi + 3).x);
		vec4 b = vec4(texelFetch(yin, yi).x, texelFetch(yin, yi + 1).x, texelFetch(yin, yi + 2).x, texelFetch(yin, yi + 3).x);
		y4[(p.yoff + i) / 4u] = b + p.alpha * a;
		return;
	}
	for (uint k = i; k < min(i + 4u, p.n); k++) {
		y[p.yoff + k] = texelFetch(yin, int(p.yinoff + k)).x + p.alpha * texelFetch(x, int(p.xoff + k)).x;
	}
}
