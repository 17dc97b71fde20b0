#version 450
// Backward of sum and mean: dx[o, a, i] = scale * dy[o, i] over an
// (outer, axis, inner) dx, or dx += that with accumulate. Workgroup y (and
// z) index the outer axis; each invocation writes four neighbouring elements
// of one outer slice. dy (and dx when accumulating) are read through texel
// buffers.
//   MODE 0: any inner, float texels.
//   MODE 1: inner, offsets multiples of 4: RGBA32F texels, vec4 stores.
//   MODE 2: inner = 1 (the reduced axis was the last): one dy value per
//           slice, float texels.
//   MODE 3: as 2 with axis and the dx offset multiples of 4: vec4 stores.
layout(local_size_x = 256) in;

#include "arith_div.glsl"

layout(constant_id = 0) const uint MODE = 0;

layout(push_constant) uniform Push {
	uint outer;
	uint slice; // axis * inner
	uint inner;
	uint innerM; // divMagic constants of inner
	uint innerSh;
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
	uint o = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
	uint e = 4u * gl_GlobalInvocationID.x;
	if (o >= p.outer || e >= p.slice) {
		return;
	}
	uint at = o * p.slice + e;
	bool acc = p.accumulate != 0u;
	if (MODE == 1u) {
		vec4 g = p.scale * texelFetch(dy, int((p.dyoff + o * p.inner + e - divMagic(e, p.innerM, p.innerSh) * p.inner) / 4u));
		if (acc) {
			g += texelFetch(dxin, int((p.dxinoff + at) / 4u));
		}
		dx4[(p.dxoff + at) / 4u] = g;
		return;
	}
	if (MODE == 3u) {
		vec4 g = vec4(p.scale * texelFetch(dy, int(p.dyoff + o)).x);
		if (acc) {
			g += texelFetch(dxin, int((p.dxinoff + at) / 4u));
		}
		dx4[(p.dxoff + at) / 4u] = g;
		return;
	}
	float g2 = p.scale * texelFetch(dy, int(p.dyoff + o)).x;
	uint end = min(e + 4u, p.slice);
	for (uint k = e; k < end; k++) {
		float g = MODE == 2u ? g2 : p.scale * texelFetch(dy, int(p.dyoff + o * p.inner + k - divMagic(k, p.innerM, p.innerSh) * p.inner)).x;
		if (acc) {
			g += texelFetch(dxin, int(p.dxinoff + at + k - e)).x;
		}
		dx[p.dxoff + at + k - e] = g;
	}
}
