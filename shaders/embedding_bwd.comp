#version 450
// Embedding backward, a deterministic scatter-add: each invocation owns one
// column (four when VEC4) of the table chunk [v0, v1) and walks the ids in
// order, dtable[ids[i] − v0, c] += dout[i, c]. Ids outside the chunk are
// skipped. ids (n,) int32, dout (n, C), dtable chunk (v1 − v0, C).
#include "norm_rows.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const bool VEC4 = true;

layout(push_constant) uniform Push {
	int n;
	int C;
	int v0;
	int v1;
	int is;
	int dos;
	int dts;
} p;

layout(std430, binding = 0) readonly buffer Ids { int ids[]; };
layout(binding = 1) uniform samplerBuffer dout;
layout(std430, binding = 2) buffer DT { float dt[]; };
layout(std430, binding = 2) buffer DT4 { vec4 dt4[]; };

void main() {
	int k = int(gl_GlobalInvocationID.x);
	int c = VEC4 ? 4 * k : k;
	if (c >= p.C) {
		return;
	}
	int dl = textureSize(dout) - 1;
	for (int i = 0; i < p.n; i++) {
		int id = ids[p.is + i];
		if (id < p.v0 || id >= p.v1) {
			continue;
		}
		int e = p.dos + i * p.C + c;
		int f = p.dts + (id - p.v0) * p.C + c;
		if (VEC4) {
			dt4[f >> 2] += load4(dout, e, dl);
		} else {
			dt[f] += load1(dout, e);
		}
	}
}
