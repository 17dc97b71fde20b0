#version 450
// Global gradient-norm clipping as torch.nn.utils.clip_grad_norm_: from the
// sums of squares of k gradient arrays, total = sqrt(sum), in array order,
// and coef = min(max_norm / (total + 1e-6), 1). One invocation.
layout(local_size_x = 1) in;

layout(push_constant) uniform Push {
	uint k;
	uint soff;
	uint coff;
	uint noff;
	float maxNorm;
	uint hasNorm;
} p;

layout(binding = 0) uniform samplerBuffer sumsq;
layout(std430, binding = 1) writeonly buffer C { float coef[]; };
layout(std430, binding = 2) writeonly buffer N { float norm[]; };

void main() {
	float s = 0.0;
	for (uint i = 0u; i < p.k; i++) {
		s += texelFetch(sumsq, int(p.soff + i)).x;
	}
	float total = sqrt(s);
	coef[p.coff] = min(p.maxNorm / (total + 1e-6), 1.0);
	if (p.hasNorm != 0u) {
		norm[p.noff] = total;
	}
}
