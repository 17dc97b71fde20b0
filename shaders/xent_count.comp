#version 450
// Cross-entropy bookkeeping in one workgroup, in a fixed order:
// count = the number of rows whose label is not -100, written to stats[2n].
//   MODE 0: stats[2n + 1] = dloss / count (the gradient scale; dloss is 1
//           without a dloss binding), 0 when count is 0.
//   MODE 1: loss = sum of rowloss (stats[n, 2n)) / count, 0 when count is 0.
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint MODE = 0;
layout(local_size_x_id = 0) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
	uint n;
	uint loff;
	uint doff;
	uint hasDloss;
	uint soff;
	uint yoff;
} p;

layout(std430, binding = 0) readonly buffer L { int labels[]; };
layout(binding = 1) uniform samplerBuffer dloss;
layout(std430, binding = 2) buffer S { float stats[]; };
layout(std430, binding = 3) buffer Y { float loss[]; };

void main() {
	uint t = gl_LocalInvocationID.x;
	float cnt = 0.0, s = 0.0;
	for (uint k = t; k < p.n; k += WG) {
		if (labels[p.loff + k] != -100) {
			cnt += 1.0;
		}
		if (MODE == 1u) {
			s += stats[p.soff + p.n + k];
		}
	}
	cnt = wgSum(cnt);
	if (MODE == 1u) {
		s = wgSum(s);
	}
	if (t != 0u) {
		return;
	}
	stats[p.soff + 2u * p.n] = cnt;
	if (MODE == 0u) {
		float dl = p.hasDloss != 0u ? texelFetch(dloss, int(p.doff)).x : 1.0;
		stats[p.soff + 2u * p.n + 1u] = cnt > 0.0 ? dl / cnt : 0.0;
	} else {
		loss[p.yoff] = cnt > 0.0 ? s / cnt : 0.0;
	}
}
