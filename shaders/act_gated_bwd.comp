#version 450
// Backward of h = f(a) ⊙ b in one pass: da = dh ⊙ b ⊙ f'(a), db = dh ⊙ f(a),
// plus the old values (texel views dao, dbo) when ACCUM. Each invocation
// handles four elements aligned to da.
#include "elementwise.glsl"
#include "norm_rows.glsl"
#include "act.glsl"

layout(constant_id = 1) const bool ACCUM = false;

layout(push_constant) uniform Push {
	int n;
	int dhs;
	int as;
	int bs;
	int daos;
	int dbos;
	int das;
	int dbs;
} p;

layout(binding = 0) uniform samplerBuffer dh;
layout(binding = 1) uniform samplerBuffer a;
layout(binding = 2) uniform samplerBuffer b;
layout(binding = 3) uniform samplerBuffer dao;
layout(binding = 4) uniform samplerBuffer dbo;
layout(std430, binding = 5) writeonly buffer DA { float da[]; };
layout(std430, binding = 5) writeonly buffer DA4 { vec4 da4[]; };
layout(std430, binding = 6) writeonly buffer DB { float db[]; };
layout(std430, binding = 6) writeonly buffer DB4 { vec4 db4[]; };

void main() {
	int al = p.das & 3;
	int j = int(linearIndex());
	if (j >= (al + p.n + 3) >> 2) {
		return;
	}
	int c = 4 * j - al;
	vec4 g = load4(dh, p.dhs + c, textureSize(dh) - 1);
	vec4 av = load4(a, p.as + c, textureSize(a) - 1);
	vec4 ga = g * load4(b, p.bs + c, textureSize(b) - 1) * actGrad(av);
	vec4 gb = g * act(av);
	if (ACCUM) {
		ga += load4(dao, p.daos + c, textureSize(dao) - 1);
		gb += load4(dbo, p.dbos + c, textureSize(dbo) - 1);
	}
	bvec4 ok = valid4(c, p.n);
	STORE4(da, da4, p.das + c, ga, ok);
	STORE4(db, db4, p.dbs + c, gb, ok);
}
