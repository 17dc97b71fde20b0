// Helpers shared by the row-wise kernels (norm*, softmax*, act*, embedding*,
// relpos*).
//
// Inputs are read through RGBA32F texel views (several times faster than
// storage-buffer loads on lavapipe) at any element alignment: load4 fetches
// the one or two texels that hold elements e..e+3. Outputs are written
// through storage buffers in groups of four elements aligned to the output,
// so that the interior of a row takes vec4 stores and only the edges take
// scalar ones, whatever the row length and offsets.

#extension GL_KHR_shader_subgroup_basic : require

// load4 returns elements e, e+1, e+2, e+3 of the texel view v, whose last
// texel is last. Elements outside the view come back as unspecified values
// (the fetches are clamped into the view, never out of range); callers mask
// them. e may be as low as -3.
vec4 load4(samplerBuffer v, int e, int last) {
	int q = e >> 2; // floor(e / 4), also for negative e
	int r = e & 3;
	vec4 lo = texelFetch(v, clamp(q, 0, last));
	if (r == 0) {
		return lo;
	}
	vec4 hi = texelFetch(v, clamp(q + 1, 0, last));
	if (r == 1) {
		return vec4(lo.yzw, hi.x);
	}
	if (r == 2) {
		return vec4(lo.zw, hi.xy);
	}
	return vec4(lo.w, hi.xyz);
}

// load1 returns element e of the texel view v.
float load1(samplerBuffer v, int e) {
	return texelFetch(v, e >> 2)[e & 3];
}

// valid4 marks which of the columns c, c+1, c+2, c+3 lie in [0, n).
bvec4 valid4(int c, int n) {
	ivec4 k = ivec4(c) + ivec4(0, 1, 2, 3);
	return bvec4(uvec4(greaterThanEqual(k, ivec4(0))) & uvec4(lessThan(k, ivec4(n))));
}

// STORE4(Y, Y4, F, V, OK) writes V[t] to Y[F + t] where OK[t]: one vec4
// store (through Y4, the same binding seen as vec4s) when all four are
// written and F is a multiple of 4, scalar stores otherwise.
#define STORE4(Y, Y4, F, V, OK) \
	{ \
		int f_ = (F); \
		vec4 v_ = (V); \
		bvec4 ok_ = (OK); \
		if (all(ok_) && (f_ & 3) == 0) { \
			Y4[f_ >> 2] = v_; \
		} else { \
			for (int t_ = 0; t_ < 4; t_++) { \
				if (ok_[t_]) { \
					Y[f_ + t_] = v_[t_]; \
				} \
			} \
		} \
	}

// Row kernels give each row to one subgroup; the workgroups stride over the
// rows, so the result does not depend on how many subgroups a workgroup
// holds (the host assumes workgroup size / subgroup size).
uint rowBegin() {
	return (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_NumSubgroups + gl_SubgroupID;
}

uint rowStep() {
	return gl_NumWorkGroups.x * gl_NumWorkGroups.y * gl_NumSubgroups;
}
