#version 450
// T5 relative position bias, one row (h, q) per subgroup:
//   bias[h, q, k] = table[bucket(k − (q + qoff)), h]
// bias (H, Tq, Tk), table (num_buckets, H) (HF's relative_attention_bias
// weight layout).
#include "norm_rows.glsl"

layout(local_size_x_id = 0) in;

#define RELPOS_MAX_THR 20

layout(push_constant) uniform Push {
	uint rows; // in this dispatch
	uint row0;
	int H;
	int Tq;
	int Tk;
	int qoff;
	int nbh;
	int me;
	int bidir;
	int nthr;
	int ts;
	int bs;
	int thr[RELPOS_MAX_THR];
} p;

#include "relpos.glsl"

layout(binding = 0) uniform samplerBuffer table; // float texels
layout(std430, binding = 1) writeonly buffer B { float bias[]; };
layout(std430, binding = 1) writeonly buffer B4 { vec4 bias4[]; };

void main() {
	int Tk = p.Tk;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		int gr = int(p.row0 + row);
		int h = gr / p.Tq;
		int q = gr % p.Tq + p.qoff;
		int fr = p.bs + int(row) * Tk;
		int a = fr & 3;
		int ng = (a + Tk + 3) >> 2;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			ivec4 e = p.ts + relposBucket4(ivec4(c - q) + ivec4(0, 1, 2, 3)) * p.H + h;
			vec4 v = vec4(texelFetch(table, e.x).x, texelFetch(table, e.y).x, texelFetch(table, e.z).x, texelFetch(table, e.w).x);
			STORE4(bias, bias4, fr + c, v, valid4(c, Tk));
		}
	}
}
