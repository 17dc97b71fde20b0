#version 450
// InfoNCE with the positive at index 0 and a per-row set of negatives, one
// workgroup per row of neg (rows, P); see kernels.Contrastive. Over the
// row's negatives (mask[j] != 0), with m the largest of pos and the
// negatives' scores, e0 = exp((pos - m) / tau), e[j] = exp((neg[j] - m) / tau),
// sn = sum e[j] and S = e0 + sn (log-sum-exp with the maximum subtracted
// before the division by tau, so that the differences stay exact when the
// scores are large):
//   MODE 0: y[row] = (m - pos) / tau + log(S) = -log(e0 / S), the row's
//           loss; 0 without negatives.
//   MODE 1: with c = scale * dloss (dloss 1 without its binding), 0 for a
//           row without negatives:
//           g[j] = c * e[j] / (S * tau) for negatives, 0 elsewhere;
//           y[row] = -c * sn / (S * tau), the gradient of pos;
//           each written only when its flag is set, added with accumulate.
// Reductions in a fixed order (reduce.glsl).
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint MODE = 0;
layout(local_size_x_id = 0) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
	uint rows;
	uint P;
	uint posoff;
	uint negoff;
	uint maskoff;
	uint dlossoff;
	uint yoff; // row losses (MODE 0), dpos (MODE 1)
	uint goff; // dneg (MODE 1)
	float tau;
	float scale;
	uint flags; // 1: write dpos, 2: write dneg, 4: accumulate, 8: dloss bound
} p;

layout(binding = 0) uniform samplerBuffer pos;
layout(binding = 1) uniform samplerBuffer neg;
layout(binding = 2) uniform samplerBuffer mask;
layout(binding = 3) uniform samplerBuffer dloss;
layout(std430, binding = 4) buffer Y { float y[]; };
layout(std430, binding = 5) buffer G { float g[]; };

bool isNegative(uint k) {
	return texelFetch(mask, int(p.maskoff + k)).x != 0.0;
}

// e returns exp((neg[k] - m) / tau).
float e(uint k, float m) {
	return exp((texelFetch(neg, int(p.negoff + k)).x - m) / p.tau);
}

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= p.rows) {
		return;
	}
	uint t = gl_LocalInvocationID.x;
	uint base = row * p.P;
	float x0 = texelFetch(pos, int(p.posoff + row)).x;
	float m = uintBitsToFloat(0xff800000u); // -inf
	float found = 0.0;
	for (uint k = t; k < p.P; k += WG) {
		if (isNegative(base + k)) {
			m = max(m, texelFetch(neg, int(p.negoff + base + k)).x);
			found = 1.0;
		}
	}
	m = max(wgMax(m), x0);
	bool has = wgMax(found) > 0.0;
	float sn = 0.0;
	for (uint k = t; k < p.P; k += WG) {
		if (isNegative(base + k)) {
			sn += e(base + k, m);
		}
	}
	sn = wgSum(sn);
	float S = exp((x0 - m) / p.tau) + sn;
	if (MODE == 0u) {
		if (t == 0u) {
			y[p.yoff + row] = has ? (m - x0) / p.tau + log(S) : 0.0;
		}
		return;
	}
	bool acc = (p.flags & 4u) != 0u;
	float c = (p.flags & 8u) != 0u ? texelFetch(dloss, int(p.dlossoff)).x : 1.0;
	c = has ? p.scale * c / (S * p.tau) : 0.0;
	if ((p.flags & 2u) != 0u) {
		for (uint k = t; k < p.P; k += WG) {
			float r = isNegative(base + k) ? c * e(base + k, m) : 0.0;
			uint at = p.goff + base + k;
			g[at] = acc ? g[at] + r : r;
		}
	}
	if ((p.flags & 1u) != 0u && t == 0u) {
		float r = -c * sn;
		uint at = p.yoff + row;
		y[at] = acc ? y[at] + r : r;
	}
}
