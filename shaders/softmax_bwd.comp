#version 450
// Backward of the softmax over the last axis, one row per subgroup:
//   dx = y ⊙ (dy − Σ dy ⊙ y)
// plus the old dx (texel view dxo) when ACCUM. y, dy, dx (rows, T). dx may
// alias dy when not accumulating.
// With DROPOUT, dy is the gradient of dropout(y) (softmax.comp's yd): it is
// first multiplied by the dropout mask of element e of the whole tensor,
// (row0 + row)·T + column, as dropout.comp's backward does.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "norm_rows.glsl"
#include "dropout.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool ACCUM = false;
layout(constant_id = 2) const bool DROPOUT = false;

layout(push_constant) uniform Push {
	uint rows;
	int T;
	int ys;
	int dys;
	int dxos;
	int dxs;
	uint row0; // DROPOUT: index of this dispatch's first row in the tensor
	float drop;
	uint site;
	uint seedoff;
} p;

layout(binding = 0) uniform samplerBuffer y;
layout(binding = 1) uniform samplerBuffer dy;
layout(binding = 2) uniform samplerBuffer dxo;
layout(std430, binding = 3) writeonly buffer DX { float dx[]; };
layout(std430, binding = 3) writeonly buffer DX4 { vec4 dx4[]; };
layout(std430, binding = 4) readonly buffer Seed { uint seed[]; };

uint sd;
float scale;

// grad returns dy at columns c..c+3 of the row whose first element is
// element g0 of the tensor, with the dropout mask applied under DROPOUT.
vec4 grad(int e, int last, uint g0, int c) {
	vec4 v = load4(dy, e, last);
	if (DROPOUT) {
		uint g = g0 + uint(c); // wraps for c < 0: those columns are masked
		v *= vec4(dropKeep(sd, p.site, g, p.drop), dropKeep(sd, p.site, g + 1u, p.drop),
		          dropKeep(sd, p.site, g + 2u, p.drop), dropKeep(sd, p.site, g + 3u, p.drop)) * scale;
	}
	return v;
}

void main() {
	int T = p.T;
	int yl = textureSize(y) - 1;
	int dyl = textureSize(dy) - 1;
	int ol = textureSize(dxo) - 1;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	sd = DROPOUT ? seed[p.seedoff] : 0u;
	scale = 1.0 / (1.0 - p.drop);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		int off = int(row) * T;
		uint g0 = (p.row0 + row) * uint(T);
		int fr = p.dxs + off;
		int a = fr & 3;
		int ng = (a + T + 3) >> 2;
		float s = 0.0;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = load4(y, p.ys + off + c, yl) * grad(p.dys + off + c, dyl, g0, c);
			s += dot(mix(vec4(0.0), v, valid4(c, T)), vec4(1.0));
		}
		s = subgroupAdd(s);
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = load4(y, p.ys + off + c, yl) * (grad(p.dys + off + c, dyl, g0, c) - s);
			if (ACCUM) {
				v += load4(dxo, p.dxos + off + c, ol);
			}
			STORE4(dx, dx4, fr + c, v, valid4(c, T));
		}
	}
}
