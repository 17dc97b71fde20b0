#version 450
// LayerNorm with affine weight and bias, one row per subgroup:
//   mean = Σx / C,  rstd = 1 / sqrt(Σ(x − mean)² / C + eps),
//   y = (x − mean) · rstd ⊙ w + b,
// x, y (rows, C), w, b (C,), mean and rstd (rows,) written when SAVE.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "norm_rows.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool SAVE = true;

layout(push_constant) uniform Push {
	uint rows;
	int C;
	float eps;
	int xs;
	int ws;
	int bs;
	int ys;
	int ms;
	int rs;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer w;
layout(binding = 2) uniform samplerBuffer b;
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 4) writeonly buffer M { float mean[]; };
layout(std430, binding = 5) writeonly buffer R { float rstd[]; };

void main() {
	int C = p.C;
	int xl = textureSize(x) - 1;
	int wl = textureSize(w) - 1;
	int bl = textureSize(b) - 1;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		int xr = p.xs + int(row) * C;
		int yr = p.ys + int(row) * C;
		int a = yr & 3;
		int ng = (a + C + 3) >> 2;
		float s = 0.0;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			s += dot(mix(vec4(0.0), load4(x, xr + c, xl), valid4(c, C)), vec4(1.0));
		}
		float mu = subgroupAdd(s) / float(C);
		float ss = 0.0;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = mix(vec4(0.0), load4(x, xr + c, xl) - mu, valid4(c, C));
			ss += dot(v, v);
		}
		float r = 1.0 / sqrt(subgroupAdd(ss) / float(C) + p.eps);
		if (SAVE && subgroupElect()) {
			mean[p.ms + int(row)] = mu;
			rstd[p.rs + int(row)] = r;
		}
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 v = (load4(x, xr + c, xl) - mu) * r * load4(w, p.ws + c, wl) + load4(b, p.bs + c, bl);
			STORE4(y, y4, yr + c, v, valid4(c, C));
		}
	}
}
