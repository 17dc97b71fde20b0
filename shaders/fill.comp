#version 450
// y[i] = value for i < n.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
	float value;
} p;

layout(std430, binding = 0) writeonly buffer Y { float y[]; };

void main() {
	uint i = linearIndex();
	if (i < p.n) {
		y[i] = p.value;
	}
}
