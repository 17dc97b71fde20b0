#version 450
// Reduces each row of a (rows, axis) array: one workgroup per row, its WG
// invocations striding over the row (four elements at a time when VEC4),
// then a fixed-order workgroup reduction (reduce.glsl).
//
//   OP 0: y[r] = scale * sum_a x[r, a]          (sum, mean)
//   OP 1: y[r] = max_a x[r, a], idx[r] = first arg-max
//   OP 2: y[r] = scale * sum_a x[r, a]^2        (sum of squares)
//   OP 3: y[r] = scale * sum_a x[r, a]*x2[r, a] (dot products)
// With accumulate set, sums are added to y instead of overwriting it.
//
// x and x2 are read through texel buffers: RGBA32F when VEC4 (row length and
// offsets multiples of 4), float texels otherwise.
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const bool VEC4 = true;
layout(constant_id = 2) const uint OP = 0;
layout(local_size_x_id = 0) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
	uint rows;
	uint axis;
	uint xoff;
	uint x2off;
	uint yoff;
	uint ioff;
	float scale;
	uint accumulate;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer x2;
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) writeonly buffer I { int idx[]; };

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= p.rows) {
		return; // the whole workgroup leaves together
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * p.axis;
	float s = 0.0;
	float m = uintBitsToFloat(0xff800000u); // -inf
	int mi = 0x7fffffff;
	if (VEC4) {
		uint n4 = p.axis / 4u;
		uint xb = (p.xoff + base) / 4u;
		uint x2b = (p.x2off + base) / 4u;
		vec4 acc = vec4(0.0);
		for (uint k = t; k < n4; k += WG) {
			vec4 v = texelFetch(x, int(xb + k));
			if (OP == 0u) {
				acc += v;
			} else if (OP == 1u) {
				for (uint c = 0u; c < 4u; c++) {
					if (v[c] > m) {
						m = v[c];
						mi = int(4u * k + c);
					}
				}
			} else if (OP == 2u) {
				acc += v * v;
			} else {
				acc += v * texelFetch(x2, int(x2b + k));
			}
		}
		s = (acc.x + acc.y) + (acc.z + acc.w);
	} else {
		for (uint k = t; k < p.axis; k += WG) {
			float v = texelFetch(x, int(p.xoff + base + k)).x;
			if (OP == 0u) {
				s += v;
			} else if (OP == 1u) {
				if (v > m) {
					m = v;
					mi = int(k);
				}
			} else if (OP == 2u) {
				s += v * v;
			} else {
				s += v * texelFetch(x2, int(p.x2off + base + k)).x;
			}
		}
	}
	if (OP == 1u) {
		wgArgMax(m, mi);
		if (t == 0u) {
			if (mi == 0x7fffffff) {
				mi = 0; // every element is -inf (or NaN)
			}
			y[p.yoff + row] = m;
			idx[p.ioff + row] = mi;
		}
		return;
	}
	s = wgSum(s) * p.scale;
	if (t == 0u) {
		if (p.accumulate != 0u) {
			s += y[p.yoff + row];
		}
		y[p.yoff + row] = s;
	}
}
