// Cosine similarity of the rows of a and b, (rows, C), as
// torch.nn.functional.cosine_similarity computes it since torch 1.12:
//   cos = a.b / (max(|a|, eps) * max(|b|, eps))
// One workgroup per row. Included by reduce_cosine.comp (forward) and
// reduce_cosine_bwd.comp (BACKWARD defined). The backward is the exact
// derivative of that formula: where |a| < eps the clamped norm is a constant
// and contributes nothing.
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const bool VEC4 = true;
layout(local_size_x_id = 0) in;

#include "reduce.glsl"

layout(binding = 0) uniform samplerBuffer a;
layout(binding = 1) uniform samplerBuffer b;

#ifdef BACKWARD
layout(push_constant) uniform Push {
	uint rows;
	uint C;
	uint aoff;
	uint boff;
	uint dyoff;
	uint daoff;
	uint dboff;
	float eps;
	uint flags; // 1: write da, 2: write db, 4: accumulate
} p;
layout(binding = 2) uniform samplerBuffer dy;
layout(std430, binding = 3) buffer DA { float da[]; };
layout(std430, binding = 3) buffer DA4 { vec4 da4[]; };
layout(std430, binding = 4) buffer DB { float db[]; };
layout(std430, binding = 4) buffer DB4 { vec4 db4[]; };
#else
layout(push_constant) uniform Push {
	uint rows;
	uint C;
	uint aoff;
	uint boff;
	uint yoff;
	float eps;
} p;
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
#endif

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= p.rows) {
		return;
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * p.C;
	float ab = 0.0, aa = 0.0, bb = 0.0;
	if (VEC4) {
		vec4 sab = vec4(0.0), saa = vec4(0.0), sbb = vec4(0.0);
		for (uint k = t; k < p.C / 4u; k += WG) {
			vec4 u = texelFetch(a, int((p.aoff + base) / 4u + k));
			vec4 v = texelFetch(b, int((p.boff + base) / 4u + k));
			sab += u * v;
			saa += u * u;
			sbb += v * v;
		}
		ab = (sab.x + sab.y) + (sab.z + sab.w);
		aa = (saa.x + saa.y) + (saa.z + saa.w);
		bb = (sbb.x + sbb.y) + (sbb.z + sbb.w);
	} else {
		for (uint k = t; k < p.C; k += WG) {
			float u = texelFetch(a, int(p.aoff + base + k)).x;
			float v = texelFetch(b, int(p.boff + base + k)).x;
			ab += u * v;
			aa += u * u;
			bb += v * v;
		}
	}
	ab = wgSum(ab);
	aa = wgSum(aa);
	bb = wgSum(bb);
	float na = sqrt(aa), nb = sqrt(bb);
	float n1 = max(na, p.eps), n2 = max(nb, p.eps);
	float cos = ab / (n1 * n2);
#ifndef BACKWARD
	if (t == 0u) {
		y[p.yoff + row] = cos;
	}
#else
	float g = texelFetch(dy, int(p.dyoff + row)).x;
	float c = g / (n1 * n2);
	float ka = na >= p.eps ? g * cos / (n1 * n1) : 0.0;
	float kb = nb >= p.eps ? g * cos / (n2 * n2) : 0.0;
	bool wa = (p.flags & 1u) != 0u, wb = (p.flags & 2u) != 0u, acc = (p.flags & 4u) != 0u;
	if (VEC4) {
		for (uint k = t; k < p.C / 4u; k += WG) {
			vec4 u = texelFetch(a, int((p.aoff + base) / 4u + k));
			vec4 v = texelFetch(b, int((p.boff + base) / 4u + k));
			if (wa) {
				uint at = (p.daoff + base) / 4u + k;
				vec4 r = c * v - ka * u;
				da4[at] = acc ? da4[at] + r : r;
			}
			if (wb) {
				uint at = (p.dboff + base) / 4u + k;
				vec4 r = c * u - kb * v;
				db4[at] = acc ? db4[at] + r : r;
			}
		}
	} else {
		for (uint k = t; k < p.C; k += WG) {
			float u = texelFetch(a, int(p.aoff + base + k)).x;
			float v = texelFetch(b, int(p.boff + base + k)).x;
			if (wa) {
				uint at = p.daoff + base + k;
				float r = c * v - ka * u;
				da[at] = acc ? da[at] + r : r;
			}
			if (wb) {
				uint at = p.dboff + base + k;
				float r = c * u - kb * v;
				db[at] = acc ? db[at] + r : r;
			}
		}
	}
#endif
}
