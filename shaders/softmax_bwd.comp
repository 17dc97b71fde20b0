#version 450
// Backward of the softmax over the last axis, one row per subgroup:
//   dx = y ⊙ (dy − Σ dy ⊙ y)
// plus the old dx (texel view dxo) when ACCUM. y, dy, dx (rows, T). dx may
// alias dy when not accumulating.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "norm_rows.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool ACCUM = false;

layout(push_constant) uniform Push {
	uint rows;
	int T;
	int ys;
	int dys;
	int dxos;
	int dxs;
} p;

layout(binding = 0) uniform samplerBuffer y;
layout(binding = 1) uniform samplerBuffer dy;
layout(binding = 2) uniform samplerBuffer dxo;
layout(std430, binding = 3) writeonly buffer DX { float dx[]; };
layout(std430, binding = 3) writeonly buffer DX4 { vec4 dx4[]; };

void main() {
	int T = p.T;
	int yl = textureSize(y) - 1;
	int dyl = textureSize(dy) - 1;
	int ol = textureSize(dxo) - 1;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		int off = int(row) * T;
		int fr = p.dxs + off;
		int a = fr & 3;
		int ng = (a + T + 3) >> 2;
		float s = 0.0;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = load4(y, p.ys + off + c, yl) * load4(dy, p.dys + off + c, dyl);
			s += dot(mix(vec4(0.0), v, valid4(c, T)), vec4(1.0));
		}
		s = subgroupAdd(s);
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = load4(y, p.ys + off + c, yl) * (load4(dy, p.dys + off + c, dyl) - s);
			if (ACCUM) {
				v += load4(dxo, p.dxos + off + c, ol);
			}
			STORE4(dx, dx4, fr + c, v, valid4(c, T));
		}
	}
}
