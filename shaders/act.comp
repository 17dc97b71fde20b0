#version 450
// Elementwise activation, forward (BWD false: y = f(x)) or backward (BWD:
// y = dy ⊙ f'(x), plus the old y, read through the texel view yo, when
// ACCUM). Each invocation handles four elements aligned to y.
#include "elementwise.glsl"
#include "norm_rows.glsl"
#include "act.glsl"

layout(constant_id = 1) const bool BWD = false;
layout(constant_id = 2) const bool ACCUM = false;

layout(push_constant) uniform Push {
	int n;
	int xs;
	int dys;
	int yos;
	int ys;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer dy;
layout(binding = 2) uniform samplerBuffer yo;
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) writeonly buffer Y4 { vec4 y4[]; };

void main() {
	int a = p.ys & 3;
	int j = int(linearIndex());
	if (j >= (a + p.n + 3) >> 2) {
		return;
	}
	int c = 4 * j - a;
	vec4 v = load4(x, p.xs + c, textureSize(x) - 1);
	if (BWD) {
		v = load4(dy, p.dys + c, textureSize(dy) - 1) * actGrad(v);
		if (ACCUM) {
			v += load4(yo, p.yos + c, textureSize(yo) - 1);
		}
	} else {
		v = act(v);
	}
	STORE4(y, y4, p.ys + c, v, valid4(c, p.n));
}
