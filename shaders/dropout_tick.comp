#version 450
// Advances the dropout seed by one step: seed[off] += 1.
layout(local_size_x = 1) in;

layout(push_constant) uniform Push {
	uint off;
} p;

layout(std430, binding = 0) buffer Seed { uint seed[]; };

void main() {
	seed[p.off] += 1u;
}
