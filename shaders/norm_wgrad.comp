#version 450
// Weight (and bias) gradients of the norms, a deterministic column
// reduction: each invocation owns four consecutive columns and sums over the
// rows in order,
//   dw = Σ_rows dy ⊙ xhat,  db = Σ_rows dy,
// with xhat = x · rstd (RMS norm) or (x − mean) · rstd (LayerNorm, LAYER).
// Added to the old values (texel views dwo, dbo) when ACCUM.
// dy, x (rows, C), mean and rstd (rows,), dw and db (C,).
#include "norm_rows.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const bool LAYER = false;
layout(constant_id = 1) const bool HAS_DW = true;
layout(constant_id = 2) const bool HAS_DB = false;
layout(constant_id = 3) const bool ACCUM = false;

layout(push_constant) uniform Push {
	uint rows;
	int C;
	int dys;
	int xs;
	int ms;
	int rs;
	int dwos;
	int dbos;
	int dws;
	int dbs;
} p;

layout(binding = 0) uniform samplerBuffer dy;
layout(binding = 1) uniform samplerBuffer x;
layout(binding = 2) uniform samplerBuffer mean;
layout(binding = 3) uniform samplerBuffer rstd;
layout(binding = 4) uniform samplerBuffer dwo;
layout(binding = 5) uniform samplerBuffer dbo;
layout(std430, binding = 6) writeonly buffer DW { float dw[]; };
layout(std430, binding = 6) writeonly buffer DW4 { vec4 dw4[]; };
layout(std430, binding = 7) writeonly buffer DB { float db[]; };
layout(std430, binding = 7) writeonly buffer DB4 { vec4 db4[]; };

void main() {
	int C = p.C;
	// Groups of four columns are aligned to the first output.
	int a = (HAS_DW ? p.dws : p.dbs) & 3;
	int j = int(gl_GlobalInvocationID.x);
	if (j >= (a + C + 3) >> 2) {
		return;
	}
	int c = 4 * j - a;
	int dyl = textureSize(dy) - 1;
	int xl = textureSize(x) - 1;
	vec4 sw = vec4(0.0);
	vec4 sb = vec4(0.0);
	for (int row = 0; row < int(p.rows); row++) {
		int off = row * C + c;
		vec4 g = load4(dy, p.dys + off, dyl);
		if (HAS_DW) {
			float r = load1(rstd, p.rs + row);
			float mu = LAYER ? load1(mean, p.ms + row) : 0.0;
			sw += g * ((load4(x, p.xs + off, xl) - mu) * r);
		}
		if (HAS_DB) {
			sb += g;
		}
	}
	bvec4 ok = valid4(c, C);
	if (HAS_DW) {
		if (ACCUM) {
			sw += load4(dwo, p.dwos + c, textureSize(dwo) - 1);
		}
		STORE4(dw, dw4, p.dws + c, sw, ok);
	}
	if (HAS_DB) {
		if (ACCUM) {
			sb += load4(dbo, p.dbos + c, textureSize(dbo) - 1);
		}
		STORE4(db, db4, p.dbs + c, sb, ok);
	}
}
