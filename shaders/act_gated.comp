#version 450
// Gated activation h = f(a) ⊙ b (T5 v1.1's gated-gelu feed-forward with
// a = x·Wi0, b = x·Wi1). Each invocation handles four elements aligned to h.
#include "elementwise.glsl"
#include "norm_rows.glsl"
#include "act.glsl"

layout(push_constant) uniform Push {
	int n;
	int as;
	int bs;
	int hs;
} p;

layout(binding = 0) uniform samplerBuffer a;
layout(binding = 1) uniform samplerBuffer b;
layout(std430, binding = 2) writeonly buffer H { float h[]; };
layout(std430, binding = 2) writeonly buffer H4 { vec4 h4[]; };

void main() {
	int al = p.hs & 3;
	int j = int(linearIndex());
	if (j >= (al + p.n + 3) >> 2) {
		return;
	}
	int c = 4 * j - al;
	vec4 v = act(load4(a, p.as + c, textureSize(a) - 1)) * load4(b, p.bs + c, textureSize(b) - 1);
	STORE4(h, h4, p.hs + c, v, valid4(c, p.n));
}
