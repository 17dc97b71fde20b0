#version 450
// T5 RMS norm, one row per subgroup: for each row,
//   rstd = 1 / sqrt(mean(x²) + eps),  y = w ⊙ x · rstd,
// x, y (rows, C), w (C,), rstd (rows,) written when SAVE.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "norm_rows.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool SAVE = true;

layout(push_constant) uniform Push {
	uint rows;
	int C;
	float eps;
	int xs; // element shifts of the operands inside their bindings
	int ws;
	int ys;
	int rs;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer w;
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 3) writeonly buffer R { float rstd[]; };

void main() {
	int C = p.C;
	int xl = textureSize(x) - 1;
	int wl = textureSize(w) - 1;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		int xr = p.xs + int(row) * C;
		int yr = p.ys + int(row) * C;
		int a = yr & 3;
		int ng = (a + C + 3) >> 2;
		float ss = 0.0;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = mix(vec4(0.0), load4(x, xr + c, xl), valid4(c, C));
			ss += dot(v, v);
		}
		ss = subgroupAdd(ss);
		float r = 1.0 / sqrt(ss / float(C) + p.eps);
		if (SAVE && subgroupElect()) {
			rstd[p.rs + int(row)] = r;
		}
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = load4(x, xr + c, xl) * load4(w, p.ws + c, wl) * r;
			STORE4(y, y4, yr + c, v, valid4(c, C));
		}
	}
}
