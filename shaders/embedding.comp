#version 450
// Embedding gather, one row per subgroup: out[i, :] = table[ids[i] − v0, :]
// for the ids in this dispatch's vocabulary chunk [v0, v1). When ZERO, ids
// outside [0, V) give rows of zeros (they are never read out of bounds).
// ids (n,) int32, table chunk (v1 − v0, C), out (n, C). Compiled with -DW16
// (embedding_w16), the table holds 16-bit floats.
#include "norm_rows.glsl"

layout(local_size_x_id = 0) in;

layout(push_constant) uniform Push {
	uint n;
	int C;
	int v0;
	int v1;
	int V;
	uint zero; // write zero rows for ids outside [0, V)
	int is;
	int ts;
	int os;
} p;

layout(std430, binding = 0) readonly buffer Ids { int ids[]; };
#ifdef W16
// The table holds float16 or bfloat16 values (BF16), read as 32-bit words
// of two values each and widened to fp32; offsets are in 16-bit elements.
#include "half.glsl"
layout(constant_id = 1) const bool BF16 = false;
layout(std430, binding = 1) readonly buffer Table { uint tw[]; };
// load16 returns element e of the bound range, clamped into it (elements
// outside are masked by the caller).
float load16(int e) {
	uint k = uint(clamp(e, 0, 2 * int(tw.length()) - 1));
	return widen16(half16(tw[k >> 1], k), BF16);
}
#define LOAD4(e) vec4(load16(e), load16((e) + 1), load16((e) + 2), load16((e) + 3))
#else
layout(binding = 1) uniform samplerBuffer table;
#define LOAD4(e) load4(table, e, tl)
#endif
layout(std430, binding = 2) writeonly buffer Out { float outv[]; };
layout(std430, binding = 2) writeonly buffer Out4 { vec4 out4[]; };

void main() {
	int C = p.C;
#ifndef W16
	int tl = textureSize(table) - 1;
#endif
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	for (uint row = rowBegin(); row < p.n; row += rowStep()) {
		int id = ids[p.is + int(row)];
		bool hit = id >= p.v0 && id < p.v1;
		bool zero = p.zero != 0u && (id < 0 || id >= p.V);
		if (!hit && !zero) {
			continue;
		}
		int fr = p.os + int(row) * C;
		int a = fr & 3;
		int ng = (a + C + 3) >> 2;
		int tr = p.ts + (hit ? id - p.v0 : 0) * C;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = hit ? LOAD4(tr + c) : vec4(0.0);
			STORE4(outv, out4, fr + c, v, valid4(c, C));
		}
	}
}
