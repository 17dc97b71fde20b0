#version 450
// One AdamW step over n parameters, as torch.optim.AdamW (amsgrad off):
//   g = g * clip                      (clip: clip_grad_norm_'s coefficient, or 1)
//   p = p * (1 - lr * wd)             (decoupled weight decay)
//   m = m + (1 - beta1) * (g - m)
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
// The hyperparameters, the step and the bias corrections bc1 = 1 - beta1^t
// and bc2 = 1 - beta2^t come from the device buffer hyper (see
// kernels/adamw.go for its layout), so that a recorded step can be replayed.
// Each invocation updates four parameters; g, m, v and the scalars are read
// through texel buffers (RGBA32F when VEC4), p through its storage buffer.
#include "elementwise.glsl"

layout(constant_id = 0) const bool VEC4 = true;

layout(push_constant) uniform Push {
	uint n;
	uint goff;
	uint moff;
	uint voff;
	uint hoff;
	uint coff;
	uint poff;
	uint mooff;
	uint vooff;
	uint hasClip;
} p;

layout(binding = 0) uniform samplerBuffer g;
layout(binding = 1) uniform samplerBuffer m;
layout(binding = 2) uniform samplerBuffer v;
layout(binding = 3) uniform samplerBuffer hyper;
layout(binding = 4) uniform samplerBuffer clip;
layout(std430, binding = 5) buffer P { float prm[]; };
layout(std430, binding = 5) buffer P4 { vec4 prm4[]; };
layout(std430, binding = 6) writeonly buffer M { float mo[]; };
layout(std430, binding = 6) writeonly buffer M4 { vec4 mo4[]; };
layout(std430, binding = 7) writeonly buffer V { float vo[]; };
layout(std430, binding = 7) writeonly buffer V4 { vec4 vo4[]; };

float h(uint k) {
	return texelFetch(hyper, int(p.hoff + k)).x;
}

void main() {
	uint i = 4u * linearIndex();
	if (i >= p.n) {
		return;
	}
	float lr = h(0u), beta2 = h(2u), eps = h(3u), wd = h(4u);
	float bc1 = h(6u), bc2 = h(7u), c1 = h(8u), c2 = h(9u);
	float scale = p.hasClip != 0u ? texelFetch(clip, int(p.coff)).x : 1.0;
	float decay = 1.0 - lr * wd;
	float stepSize = lr / bc1;
	float bc2s = sqrt(bc2);
	if (VEC4 && i + 4u <= p.n) {
		vec4 gg = texelFetch(g, int((p.goff + i) / 4u)) * scale;
		vec4 mm = texelFetch(m, int((p.moff + i) / 4u));
		vec4 vv = texelFetch(v, int((p.voff + i) / 4u));
		vec4 pp = prm4[(p.poff + i) / 4u] * decay;
		mm = mm + c1 * (gg - mm);
		vv = beta2 * vv + c2 * (gg * gg);
		vec4 denom = sqrt(vv) / bc2s + eps;
		prm4[(p.poff + i) / 4u] = pp - stepSize * (mm / denom);
		mo4[(p.mooff + i) / 4u] = mm;
		vo4[(p.vooff + i) / 4u] = vv;
		return;
	}
	uint end = min(i + 4u, p.n);
	for (uint k = i; k < end; k++) {
		float gg, mm, vv;
		if (VEC4) {
			gg = texelFetch(g, int((p.goff + k) / 4u))[k % 4u];
			mm = texelFetch(m, int((p.moff + k) / 4u))[k % 4u];
			vv = texelFetch(v, int((p.voff + k) / 4u))[k % 4u];
		} else {
			gg = texelFetch(g, int(p.goff + k)).x;
			mm = texelFetch(m, int(p.moff + k)).x;
			vv = texelFetch(v, int(p.voff + k)).x;
		}
		gg *= scale;
		float pp = prm[p.poff + k] * decay;
		mm = mm + c1 * (gg - mm);
		vv = beta2 * vv + c2 * (gg * gg);
		float denom = sqrt(vv) / bc2s + eps;
		prm[p.poff + k] = pp - stepSize * (mm / denom);
		mo[p.mooff + k] = mm;
		vo[p.vooff + k] = vv;
	}
}
