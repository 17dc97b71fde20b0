#version 450
// Cross-entropy with log-softmax over the rows of logits (rows, V), one
// workgroup per row (fixed-order reductions, reduce.glsl).
//   MODE 0 (forward):  lse[r] = logsumexp(x[r]), rowloss[r] = lse[r] - x[r, label]
//                      (0 for ignored rows).
//   MODE 1 (backward): g[r, j] = (exp(x[r, j] - lse[r]) - [j == label]) * scale,
//                      lse[r] read from stats.
//   MODE 2 (fused):    both, in one pass over the row.
// scale = dloss / count, computed by xent_count.comp into stats, and 0 for
// ignored rows (label -100). Labels outside [0, V) are clamped: the caller
// validates labels. stats is the caller's scratch: lse at [0, n), rowloss at
// [n, 2n), count at 2n, scale at 2n + 1, with n the total number of rows
// and row0 this dispatch's first row. g may be the logits themselves (in
// place): every element is read and then written by the same invocation,
// and the label's logit is read by all before any is written.
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const bool VEC4 = true;
layout(constant_id = 2) const uint MODE = 0;
layout(local_size_x_id = 0) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
	uint rows;
	uint V;
	uint xoff;
	uint loff;
	uint sinoff;
	uint soutoff;
	uint goff;
	uint row0;
	uint n;
	uint accumulate;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(std430, binding = 1) readonly buffer L { int labels[]; };
layout(binding = 2) uniform samplerBuffer statsIn;
layout(std430, binding = 3) buffer S { float stats[]; };
layout(std430, binding = 4) buffer G { float g[]; };
layout(std430, binding = 4) buffer G4 { vec4 g4[]; };

void main() {
	uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
	if (row >= p.rows) {
		return;
	}
	uint t = gl_LocalInvocationID.x;
	uint grow = p.row0 + row;
	int lab = labels[p.loff + row];
	bool ignored = lab == -100;
	uint label = uint(clamp(lab, 0, int(p.V) - 1));
	uint base = p.xoff + row * p.V;
	uint n4 = p.V / 4u;

	float lse;
	if (MODE == 1u) {
		lse = texelFetch(statsIn, int(p.sinoff + grow)).x;
	} else {
		float xl = VEC4 ? texelFetch(x, int((base + label) / 4u))[label % 4u] : texelFetch(x, int(base + label)).x;
		float m = uintBitsToFloat(0xff800000u); // -inf
		if (VEC4) {
			vec4 m4 = vec4(m);
			for (uint k = t; k < n4; k += WG) {
				m4 = max(m4, texelFetch(x, int(base / 4u + k)));
			}
			m = max(max(m4.x, m4.y), max(m4.z, m4.w));
		} else {
			for (uint k = t; k < p.V; k += WG) {
				m = max(m, texelFetch(x, int(base + k)).x);
			}
		}
		m = wgMax(m);
		float s = 0.0;
		if (VEC4) {
			vec4 s4 = vec4(0.0);
			for (uint k = t; k < n4; k += WG) {
				s4 += exp(texelFetch(x, int(base / 4u + k)) - m);
			}
			s = (s4.x + s4.y) + (s4.z + s4.w);
		} else {
			for (uint k = t; k < p.V; k += WG) {
				s += exp(texelFetch(x, int(base + k)).x - m);
			}
		}
		s = wgSum(s);
		lse = m + log(s);
		if (t == 0u) {
			stats[p.soutoff + grow] = lse;
			stats[p.soutoff + p.n + grow] = ignored ? 0.0 : lse - xl;
		}
	}
	if (MODE == 0u) {
		return;
	}
	float scale = ignored ? 0.0 : texelFetch(statsIn, int(p.sinoff + 2u * p.n + 1u)).x;
	bool acc = p.accumulate != 0u;
	if (VEC4) {
		uint gb = (p.goff + row * p.V) / 4u;
		for (uint k = t; k < n4; k += WG) {
			vec4 r = exp(texelFetch(x, int(base / 4u + k)) - lse);
			if (k == label / 4u) {
				r[label % 4u] -= 1.0;
			}
			r *= scale;
			if (acc) {
				r += g4[gb + k];
			}
			g4[gb + k] = r;
		}
	} else {
		uint gb = p.goff + row * p.V;
		for (uint k = t; k < p.V; k += WG) {
			float r = exp(texelFetch(x, int(base + k)).x - lse);
			if (k == label) {
				r -= 1.0;
			}
			r *= scale;
			if (acc) {
				r += g[gb + k];
			}
			g[gb + k] = r;
		}
	}
}
