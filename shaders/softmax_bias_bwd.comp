#version 450
// Gradient of a bias broadcast over the batch: db[e] = Σ_b dx[b·N + e] for
// e < n, summed in order of b (deterministic), plus the old db (texel view
// dbo) when ACCUM. dx (B, N), db (N,); this dispatch covers n elements.
// Each invocation handles four elements aligned to db.
#include "elementwise.glsl"
#include "norm_rows.glsl"

layout(constant_id = 0) const bool ACCUM = false;

layout(push_constant) uniform Push {
	int n;
	int N;
	int B;
	int dxs;
	int dbos;
	int dbs;
} p;

layout(binding = 0) uniform samplerBuffer dx;
layout(binding = 1) uniform samplerBuffer dbo;
layout(std430, binding = 2) writeonly buffer DB { float db[]; };
layout(std430, binding = 2) writeonly buffer DB4 { vec4 db4[]; };

void main() {
	int a = p.dbs & 3;
	int j = int(linearIndex());
	if (j >= (a + p.n + 3) >> 2) {
		return;
	}
	int c = 4 * j - a;
	int xl = textureSize(dx) - 1;
	vec4 s = vec4(0.0);
	for (int b = 0; b < p.B; b++) {
		s += load4(dx, p.dxs + b * p.N + c, xl);
	}
	if (ACCUM) {
		s += load4(dbo, p.dbos + c, textureSize(dbo) - 1);
	}
	STORE4(db, db4, p.dbs + c, s, valid4(c, p.n));
}
