#version 450
// y[yoff + i] = value for i < n.
#include "elementwise.glsl"

layout(push_constant) uniform Push {
	uint n;
	float value;
	uint yoff;
} p;

layout(std430, binding = 0) writeonly buffer Y { float y[]; };

void main() {
	uint i = linearIndex();
	if (i < p.n) {
		y[p.yoff + i] = p.value;
	}
}
