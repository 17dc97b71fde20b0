#version 450
// Backward of max and max-pooling: dx[o, idx[o, i] - a0, i] += dy[o, i] for
// every (o, i) whose index falls in [a0, a0 + axis) (negative indices, from
// fully masked columns, are skipped). dx is zeroed first by the caller unless
// it accumulates. Each dx element receives at most one value: no races.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n; // outer * inner
	uint axis;
	uint inner;
	uint dyoff;
	uint ioff;
	uint dxoff;
	int a0;
} p;

layout(binding = 0) uniform samplerBuffer dy;
layout(std430, binding = 1) readonly buffer I { int idx[]; };
layout(std430, binding = 2) buffer DX { float dx[]; };

void main() {
	uint k = linearIndex();
	if (k >= p.n) {
		return;
	}
	int a = idx[p.ioff + k] - p.a0;
	if (a < 0 || a >= int(p.axis)) {
		return;
	}
	uint o = k / p.inner;
	uint i = k % p.inner;
	uint at = p.dxoff + (o * p.axis + uint(a)) * p.inner + i;
	dx[at] += texelFetch(dy, int(p.dyoff + k)).x;
}
