#version 450
// Softmax over the last axis of attention scores x (B, H, Tq, Tk), one row
// per subgroup, with optional additive bias (H, Tq, Tk) broadcast over B
// (HAS_BIAS), additive key mask (B, Tk) (HAS_MASK) and causal masking of
// keys j > i + qoff (CAUSAL):
//   s = x + bias + mask;  y = exp(s − max) / Σ exp(s − max)
// over the keys that are not masked. A key is masked when causal masking
// excludes it or s <= -1e30 (finfo.min or -inf masks): its y is 0. A row
// whose keys are all masked gets the uniform distribution 1/Tk, as
// HuggingFace's finfo.min masks give. Max and sum are found in one online
// pass; y may alias x (each element is read before it is written, by the
// same invocation).
// With DROPOUT, yd also gets dropout(y): element e of the whole (B, H, Tq, Tk)
// tensor is kept, scaled by 1/(1 − drop), when dropKeep(seed, site, e, drop),
// the mask of dropout.comp over the same tensor.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "norm_rows.glsl"
#include "dropout.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool HAS_BIAS = false;
layout(constant_id = 2) const bool HAS_MASK = false;
layout(constant_id = 3) const bool CAUSAL = false;
layout(constant_id = 4) const bool DROPOUT = false;

const float MASKED = -1e30;
const float NONE = -3e38; // below any unmasked score

layout(push_constant) uniform Push {
	uint rows; // in this dispatch
	uint row0; // index of its first row in the whole tensor
	int Tk;
	uint HTq; // H·Tq
	uint Tq;
	int qoff;
	int xs;
	int bs;
	int ms;
	int ys;
	float drop; // DROPOUT: probability of dropping an element
	uint site;
	uint seedoff;
	int yds;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer bias;
layout(binding = 2) uniform samplerBuffer mask;
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) writeonly buffer Y4 { vec4 y4[]; };
layout(std430, binding = 4) writeonly buffer YD { float yd[]; };
layout(std430, binding = 4) writeonly buffer YD4 { vec4 yd4[]; };
layout(std430, binding = 5) readonly buffer Seed { uint seed[]; };

int xl, bl, ml;

// scores returns s for columns c..c+3 of a row, with keep marking the keys
// that are not masked.
vec4 scores(int xr, int br, int mr, int c, int lim, out bvec4 keep) {
	vec4 v = load4(x, xr + c, xl);
	if (HAS_BIAS) {
		v += load4(bias, br + c, bl);
	}
	if (HAS_MASK) {
		v += load4(mask, mr + c, ml);
	}
	keep = bvec4(uvec4(valid4(c, lim)) & uvec4(greaterThan(v, vec4(MASKED))));
	return v;
}

void main() {
	int Tk = p.Tk;
	xl = textureSize(x) - 1;
	bl = textureSize(bias) - 1;
	ml = textureSize(mask) - 1;
	int lane = int(gl_SubgroupInvocationID);
	int sg = int(gl_SubgroupSize);
	uint sd = DROPOUT ? seed[p.seedoff] : 0u;
	float scale = 1.0 / (1.0 - p.drop);
	for (uint row = rowBegin(); row < p.rows; row += rowStep()) {
		uint gr = p.row0 + row;
		int b = int(gr / p.HTq);
		int hq = int(gr % p.HTq);
		int i = int(gr % p.Tq);
		int xr = p.xs + int(row) * Tk;
		int yr = p.ys + int(row) * Tk;
		int br = p.bs + hq * Tk;
		int mr = p.ms + b * Tk;
		int a = yr & 3;
		int ng = (a + Tk + 3) >> 2;
		int lim = CAUSAL ? clamp(i + p.qoff + 1, 0, Tk) : Tk;
		float m = NONE;
		float s = 0.0;
		// Max and sum run over groups of four keys counted from the row's
		// start (not from the output's alignment), so that a row's result
		// depends on its own keys only: not on the row's place in the
		// tensor, nor on masked keys appended after it (a row of a longer
		// padded batch gives the same bits).
		for (int j = lane; j < (Tk + 3) >> 2; j += sg) {
			int c = 4 * j;
			bvec4 keep;
			vec4 v = scores(xr, br, mr, c, lim, keep);
			vec4 vm = mix(vec4(NONE), v, keep);
			float m4 = max(max(vm.x, vm.y), max(vm.z, vm.w));
			if (m4 > m) {
				s *= exp(m - m4); // 0 while m is NONE
				m = m4;
			}
			s += dot(mix(vec4(0.0), exp(vm - m), keep), vec4(1.0));
		}
		float M = subgroupMax(m);
		float S = subgroupAdd(s * exp(m - M));
		bool none = M <= MASKED;
		float inv = none ? 1.0 / float(Tk) : 1.0 / S;
		for (int j = lane; j < ng; j += sg) {
			int c = 4 * j - a;
			bvec4 keep;
			vec4 v = scores(xr, br, mr, c, lim, keep);
			vec4 e = none ? vec4(inv) : mix(vec4(0.0), exp(mix(vec4(NONE), v, keep) - M) * inv, keep);
			STORE4(y, y4, yr + c, e, valid4(c, Tk));
			if (DROPOUT) {
				// Columns c < 0 wrap around in uint; they are not stored.
				uint g = gr * uint(Tk) + uint(c);
				vec4 keep = vec4(dropKeep(sd, p.site, g, p.drop), dropKeep(sd, p.site, g + 1u, p.drop),
				                 dropKeep(sd, p.site, g + 2u, p.drop), dropKeep(sd, p.site, g + 3u, p.drop));
				STORE4(yd, yd4, p.yds + int(row) * Tk + c, e * keep * scale, valid4(c, Tk));
			}
		}
	}
}
