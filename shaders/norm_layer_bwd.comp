#version 450
// Backward of LayerNorm y = xhat ⊙ w + b with xhat = (x − mean) · rstd, one
// row per subgroup: with g = dy ⊙ w,
//   dx = rstd · (g − Σg / C − xhat · Σ(g ⊙ xhat) / C)
// added to the old dx (read through the texel view dxo) when ACCUM.
// dy, x, dx (rows, C), w (C,), mean and rstd (rows,).
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "norm_rows.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool ACCUM = false;

layout(push_constant) uniform Push {
	uint rows;
	int C;
	int dys;
	int xs;
	int ws;
	int ms;
	int rs;
	int dxos;
	int dxs;
} p;

layout(binding = 0) uniform samplerBuffer dy;
layout(binding = 1) uniform samplerBuffer x;
layout(binding = 2) uniform samplerBuffer w;
layout(binding = 3) uniform samplerBuffer mean;
layout(binding = 4) uniform samplerBuffer rstd;
layout(binding = 5) uniform samplerBuffer dxo;
layout(std430, binding = 6) writeonly buffer DX { float dx[]; };
layout(std430, binding = 6) writeonly buffer DX4 { vec4 dx4[]; };

void main() {
	int C = p.C;
	int dyl = textureSize(dy) - 1;
	int xl = textureSize(x) - 1;
	int wl = textureSize(w) - 1;
	int ol = textureSize(dxo) - 1;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		int off = int(row) * C;
		int fr = p.dxs + off;
		int a = fr & 3;
		int ng = (a + C + 3) >> 2;
		float mu = load1(mean, p.ms + int(row));
		float r = load1(rstd, p.rs + int(row));
		float sg1 = 0.0;
		float sgx = 0.0;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			bvec4 ok = valid4(c, C);
			vec4 g = mix(vec4(0.0), load4(dy, p.dys + off + c, dyl) * load4(w, p.ws + c, wl), ok);
			vec4 xh = (load4(x, p.xs + off + c, xl) - mu) * r;
			sg1 += dot(g, vec4(1.0));
			sgx += dot(g, mix(vec4(0.0), xh, ok));
		}
		float k1 = subgroupAdd(sg1) / float(C);
		float k2 = subgroupAdd(sgx) / float(C);
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			vec4 g = load4(dy, p.dys + off + c, dyl) * load4(w, p.ws + c, wl);
			vec4 xh = (load4(x, p.xs + off + c, xl) - mu) * r;
			vec4 v = r * (g - k1 - xh * k2);
			if (ACCUM) {
				v += load4(dxo, p.dxos + off + c, ol);
			}
			STORE4(dx, dx4, fr + c, v, valid4(c, C));
		}
	}
}
