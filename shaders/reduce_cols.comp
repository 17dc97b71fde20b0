#version 450
// Reduces the middle axis of an (outer, axis, inner) array into
// (outer, inner). Invocation (tx, ty) of a WX x WY workgroup owns one column
// of the inner axis (four neighbouring columns when VEC4) and walks the axis
// from ty in steps of WY, in order; with WY > 1 the WY partial results are
// then combined in ty order through shared memory. Workgroup y and z index
// the outer axis.
//
//   OP 0: y[o, i] = scale * sum_a x[o, a, i]
//   OP 1: y[o, i] = max_a x[o, a, i], idx[o, i] = first arg-max a
//   OP 3: y[o, i] = scale * sum_a x[o, a, i] * x2[o, a, i]
// With MASK, positions a where mask[o, a] == 0 are skipped; a column with no
// position left gets y = 0 and idx = -1. With accumulate set, sums are added
// to y.
layout(constant_id = 0) const uint WX = 64;
layout(constant_id = 1) const uint WY = 1;
layout(constant_id = 2) const bool VEC4 = true;
layout(constant_id = 3) const uint OP = 0;
layout(constant_id = 4) const bool MASK = false;
layout(local_size_x_id = 0, local_size_y_id = 1) in;

layout(push_constant) uniform Push {
	uint outer;
	uint axis;
	uint inner;
	uint xoff;
	uint x2off;
	uint moff;
	uint yoff;
	uint ioff;
	float scale;
	uint accumulate;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer x2;
layout(binding = 2) uniform samplerBuffer mask;
layout(std430, binding = 3) buffer Y { float y[]; };
layout(std430, binding = 3) buffer Y4 { vec4 y4[]; };
layout(std430, binding = 4) writeonly buffer I { int idx[]; };
layout(std430, binding = 4) writeonly buffer I4 { ivec4 idx4[]; };

shared vec4 shS[WX * WY];
shared ivec4 shI[WX * WY];

vec4 load(samplerBuffer b, uint off, uint o, uint a, uint c) {
	uint e = off + (o * p.axis + a) * p.inner;
	if (VEC4) {
		return texelFetch(b, int(e / 4u + c));
	}
	return vec4(texelFetch(b, int(e + c)).x, 0.0, 0.0, 0.0);
}

void main() {
	uint tx = gl_LocalInvocationID.x;
	uint ty = gl_LocalInvocationID.y;
	uint c = gl_WorkGroupID.x * WX + tx;
	uint o = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
	uint ncols = VEC4 ? p.inner / 4u : p.inner;
	bool live = c < ncols && o < p.outer;

	vec4 s = vec4(0.0);
	vec4 m = vec4(uintBitsToFloat(0xff800000u)); // -inf
	ivec4 mi = ivec4(-1);
	if (live) {
		for (uint a = ty; a < p.axis; a += WY) {
			if (MASK && texelFetch(mask, int(p.moff + o * p.axis + a)).x == 0.0) {
				continue;
			}
			vec4 v = load(x, p.xoff, o, a, c);
			if (OP == 0u) {
				s += v;
			} else if (OP == 1u) {
				// Strictly greater: the first maximum along the axis wins.
				bvec4 gt = greaterThan(v, m);
				bvec4 first = equal(mi, ivec4(-1));
				bvec4 take = bvec4(uvec4(gt) | uvec4(first));
				m = mix(m, v, take);
				mi = mix(mi, ivec4(int(a)), take);
			} else {
				s += v * load(x2, p.x2off, o, a, c);
			}
		}
	}
	if (WY > 1u) {
		uint slot = ty * WX + tx;
		shS[slot] = OP == 1u ? m : s;
		shI[slot] = mi;
		barrier();
		if (ty != 0u) {
			return;
		}
		for (uint k = 1u; k < WY; k++) {
			vec4 w = shS[k * WX + tx];
			if (OP == 1u) {
				ivec4 j = shI[k * WX + tx];
				for (uint q = 0u; q < 4u; q++) {
					if (j[q] >= 0 && (mi[q] < 0 || w[q] > m[q] || (w[q] == m[q] && j[q] < mi[q]))) {
						m[q] = w[q];
						mi[q] = j[q];
					}
				}
			} else {
				s += w;
			}
		}
	}
	if (!live) {
		return;
	}
	uint e = o * p.inner + (VEC4 ? 4u * c : c);
	if (OP == 1u) {
		vec4 r = mix(m, vec4(0.0), equal(mi, ivec4(-1)));
		if (VEC4) {
			y4[(p.yoff + e) / 4u] = r;
			idx4[(p.ioff + e) / 4u] = mi;
		} else {
			y[p.yoff + e] = r.x;
			idx[p.ioff + e] = mi.x;
		}
		return;
	}
	s *= p.scale;
	if (VEC4) {
		if (p.accumulate != 0u) {
			s += y4[(p.yoff + e) / 4u];
		}
		y4[(p.yoff + e) / 4u] = s;
	} else {
		if (p.accumulate != 0u) {
			s.x += y[p.yoff + e];
		}
		y[p.yoff + e] = s.x;
	}
}
