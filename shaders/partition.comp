#version 450
// SHLPT's threshold partition of similarity weights alpha (rows, P); see
// kernels.Partition. A prompt j of a row is kept when alpha[j] > delta (none
// when all dissimilar), and s is the sum of the row's kept alpha.
//   MODE 0 (mixture, one workgroup per row):
//          y[j] = kept ? alpha[j] / s : 0.
//   MODE 1 (mixture backward, one workgroup per row): g the gradient of the
//          mixture, m the mixture, t = sum over kept j of g[j]·m[j]:
//          y[k] = kept ? (g[k] - t) / s : 0, added with accumulate.
//   MODE 2 (negatives, one invocation per element, 256 per workgroup):
//          y = 1 when all dissimilar; else with batch negatives
//          colMean[j] < delta (the column means of alpha over the rows);
//          else alpha <= delta. 1 or 0.
// Sums run in a fixed order (reduce.glsl).
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint MODE = 0;
layout(local_size_x_id = 0) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
	uint rows;  // MODE 2: elements
	uint P;
	uint aoff;
	uint x1off; // g (MODE 1), colMean (MODE 2)
	uint x2off; // m (MODE 1)
	uint yoff;
	float delta;
	uint flags; // 1: all dissimilar, 2: batch negatives, 4: accumulate
	uint j0;    // MODE 2: the column of this dispatch's first element
} p;

layout(binding = 0) uniform samplerBuffer alpha;
layout(binding = 1) uniform samplerBuffer x1;
layout(binding = 2) uniform samplerBuffer x2;
layout(std430, binding = 3) buffer Y { float y[]; };

void main() {
	bool allDissimilar = (p.flags & 1u) != 0u;
	if (MODE == 2u) {
		uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * (gl_NumWorkGroups.x * WG);
		if (i >= p.rows) {
			return;
		}
		bool neg = true;
		if (!allDissimilar && (p.flags & 2u) != 0u) {
			neg = texelFetch(x1, int(p.x1off + (p.j0 + i) % p.P)).x < p.delta;
		} else if (!allDissimilar) {
			neg = texelFetch(alpha, int(p.aoff + i)).x <= p.delta;
		}
		y[p.yoff + i] = neg ? 1.0 : 0.0;
		return;
	}
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= p.rows) {
		return;
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * p.P;
	float s = 0.0, gm = 0.0;
	for (uint k = t; k < p.P; k += WG) {
		float a = texelFetch(alpha, int(p.aoff + base + k)).x;
		if (!allDissimilar && a > p.delta) {
			s += a;
			if (MODE == 1u) {
				gm += texelFetch(x1, int(p.x1off + base + k)).x * texelFetch(x2, int(p.x2off + base + k)).x;
			}
		}
	}
	s = wgSum(s);
	if (MODE == 1u) {
		gm = wgSum(gm);
	}
	bool acc = (p.flags & 4u) != 0u;
	for (uint k = t; k < p.P; k += WG) {
		float a = texelFetch(alpha, int(p.aoff + base + k)).x;
		bool kept = !allDissimilar && a > p.delta;
		uint at = p.yoff + base + k;
		if (MODE == 0u) {
			y[at] = kept ? a / s : 0.0;
		} else if (kept) {
			float r = (texelFetch(x1, int(p.x1off + base + k)).x - gm) / s;
			y[at] = acc ? y[at] + r : r;
		} else if (!acc) {
			y[at] = 0.0;
		}
	}
}
