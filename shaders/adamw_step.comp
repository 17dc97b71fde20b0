#version 450
// Advances the AdamW step kept on the device: t += 1 and the bias
// corrections bc = 1 - beta^t by the recurrence bc_t = (1 - beta) + beta *
// bc_{t-1}, which keeps their precision where 1 - beta^t cancels. One
// invocation; see kernels/adamw.go for the layout of hyper.
layout(local_size_x = 1) in;

layout(push_constant) uniform Push {
	uint hoff;
} p;

layout(std430, binding = 0) buffer H { float hyper[]; };

void main() {
	uint o = p.hoff;
	hyper[o + 5u] += 1.0;
	hyper[o + 6u] = hyper[o + 8u] + hyper[o + 1u] * hyper[o + 6u];
	hyper[o + 7u] = hyper[o + 9u] + hyper[o + 2u] * hyper[o + 7u];
}
