#version 450
// Strided copy over a 4-D index space (d0, d1, d2, d3):
//   y[yoff + i0*ys0 + i1*ys1 + i2*ys2 + i3*ys3] = x[xoff + i0*xs0 + ... + i3*xs3]
// or += with accumulate (yin is y read through a texel view), or = 0 with
// ZERO (x unused). Each invocation handles 4 * U neighbouring i3 (fewer
// invocations with more work each run faster on lavapipe). x is read
// through a texel buffer: RGBA32F when VEC4 (unit inner strides, the other
// strides and the offsets multiples of 4, d3 a multiple of 4 * U), float
// texels otherwise.
#include "elementwise.glsl"
#include "arith_div.glsl"

layout(constant_id = 0) const bool VEC4 = true;
layout(constant_id = 1) const bool ZERO = false;
layout(constant_id = 2) const uint U = 1;

layout(push_constant) uniform Push {
	uint n; // d0 * d1 * d2 * q invocations, q = ceil(d3 / (4 * U))
	uint d3;
	uint q; // with the divMagic constants of each divisor
	uint mq;
	uint shq;
	uint d2;
	uint m2;
	uint sh2;
	uint d1;
	uint m1;
	uint sh1;
	uint xoff;
	uint xs0;
	uint xs1;
	uint xs2;
	uint xs3;
	uint yoff;
	uint ys0;
	uint ys1;
	uint ys2;
	uint ys3;
	uint yinoff;
	uint accumulate;
} p;

layout(binding = 0) uniform samplerBuffer x;
layout(binding = 1) uniform samplerBuffer yin;
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };

void main() {
	uint g = linearIndex();
	if (g >= p.n) {
		return;
	}
	uint r = divMagic(g, p.mq, p.shq);
	uint i3 = 4u * U * (g - r * p.q);
	uint r2 = divMagic(r, p.m2, p.sh2);
	uint i2 = r - r2 * p.d2;
	uint i0 = divMagic(r2, p.m1, p.sh1);
	uint i1 = r2 - i0 * p.d1;
	uint xe = i0 * p.xs0 + i1 * p.xs1 + i2 * p.xs2 + i3 * p.xs3;
	uint ye = i0 * p.ys0 + i1 * p.ys1 + i2 * p.ys2 + i3 * p.ys3;
	if (VEC4) {
		for (uint c = 0u; c < U; c++) {
			vec4 v = ZERO ? vec4(0.0) : texelFetch(x, int((p.xoff + xe) / 4u + c));
			if (p.accumulate != 0u) {
				v += texelFetch(yin, int((p.yinoff + ye) / 4u + c));
			}
			y4[(p.yoff + ye) / 4u + c] = v;
		}
		return;
	}
	uint cnt = min(4u * U, p.d3 - i3);
	for (uint c = 0u; c < cnt; c++) {
		float v = ZERO ? 0.0 : texelFetch(x, int(p.xoff + xe + c * p.xs3)).x;
		if (p.accumulate != 0u) {
			v += texelFetch(yin, int(p.yinoff + ye + c * p.ys3)).x;
		}
		y[p.yoff + ye + c * p.ys3] = v;
	}
}
