#version 450
// Matrix product, texel variant (CPU devices such as lavapipe, small
// subgroups): C = alpha·op(A)·op(B) + beta·C (+ bias[n] on every row), batched
// over gl_WorkGroupID.z. See kernels/matmul.go for the operand layouts.
//
// A and B are read through texel buffers: RGBA32F views (VEC_A, VEC_B) where
// four consecutive elements of a row start on a texel, float views otherwise.
// lavapipe compiles every storage-buffer load into a per-lane loop with a
// bounds check; texel fetches avoid that. No shared memory, no barriers.
//
// A workgroup is one subgroup of LANES invocations and computes a tile of
// TM rows × LANES·TN4·4 columns of C: each lane owns TM rows × TN4 groups of
// 4 columns, neighbouring lanes on neighbouring column groups. All lanes need
// the same A values, so with BCAST the lanes share the fetching of A (each a
// different group of 4 k values and of rows) and pass the values around with
// subgroupShuffle from a constant lane, which lavapipe compiles to a register
// shuffle instead of a fetch. For each block of 4·KB4 values of K all of its
// B values are fetched first; the products then run row by row, so that one
// row's accumulators stay in registers through the whole block.
//
// Compiled with -DW16 (matmul_texel_w16), B holds 16-bit floats; see below.
//
// Edges: row and column indices are clamped so every fetch stays inside the
// bound views (the extra rows and columns only feed outputs that are not
// stored); the last, partial block of K is masked to zero on both sides.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint LANES = 8;    // workgroup = subgroup size
layout(constant_id = 1) const uint TM = 8;       // rows per lane
layout(constant_id = 2) const uint TN4 = 2;      // 4-column groups per lane
layout(constant_id = 3) const bool TRANS_A = false;
layout(constant_id = 4) const bool TRANS_B = false;
layout(constant_id = 5) const bool VEC_A = true; // A bound as RGBA32F, offsets and lda multiples of 4
layout(constant_id = 6) const bool VEC_B = true;
layout(constant_id = 7) const bool VEC_C = true; // C offset, ldc and N multiples of 4
layout(constant_id = 8) const bool BCAST = true; // share A fetches across the subgroup
layout(constant_id = 9) const bool BIAS = false;
layout(constant_id = 10) const bool READ_C = false; // beta != 0
layout(constant_id = 11) const uint KB4 = 8;     // a block of K is 4·KB4 values (with BCAST KB4 divides LANES, LANES / KB4 divides TM)

layout(push_constant) uniform Push {
	uint M, N, K;
	uint lda, ldb, ldc;
	uint offA, offB, offC, offBias; // element shifts inside the bound views
	uint strideA, strideB, strideC; // per batch index (gl_WorkGroupID.z)
	uint lastA, lastB;              // last valid element index of the A and B views
	float alpha, beta;
} p;

layout(binding = 0) uniform samplerBuffer A;
#ifdef W16
// B holds float16 or bfloat16 values (BF16), bound as 16-bit unsigned
// integer texels (R16G16B16A16_UINT with VEC_B, R16_UINT otherwise) and
// widened to fp32 on load; everything else is as for fp32.
#include "half.glsl"
layout(constant_id = 12) const bool BF16 = false;
layout(binding = 1) uniform usamplerBuffer B;
#define FETCH_B(i) widen16x4(texelFetch(B, i), BF16)
#else
layout(binding = 1) uniform samplerBuffer B;
#define FETCH_B(i) texelFetch(B, i)
#endif
layout(binding = 2) uniform samplerBuffer Bias; // float texels
layout(std430, binding = 3) buffer C { float c[]; };
layout(std430, binding = 3) buffer C4 { vec4 c4[]; };

uint lane, mBase, nBase, aOff, bOff;
// With BCAST the A values of a block are fetched once, spread over the
// lanes: KB4 lanes per group of 4 k values and RG = LANES / KB4 lanes per
// column, each fetching TMA = TM / RG rows: la[0][t][r] = op(A)[mBase +
// aRow + r, k0 + aK + t]. Without BCAST every lane fetches all of them:
// la[q][t][r] = op(A)[mBase + r, k0 + 4q + t].
const uint RG = BCAST ? LANES / KB4 : 1u;
const uint TMA = TM / RG;
uint aRow, aK;
float la[BCAST ? 1 : KB4][4][TMA];
vec4 bv[KB4][4][TN4]; // bv[q][t][j][i] = op(B)[k0 + 4q + t, column i of group j]
vec4 acc[TM][TN4];

// Four consecutive elements starting at element e. With VEC_*, e is a
// multiple of 4 inside the view; otherwise each index is clamped to the view.
vec4 loadA4(uint e) {
	if (VEC_A) {
		return texelFetch(A, int(e >> 2));
	}
	return vec4(texelFetch(A, int(min(e, p.lastA))).x, texelFetch(A, int(min(e + 1u, p.lastA))).x,
		texelFetch(A, int(min(e + 2u, p.lastA))).x, texelFetch(A, int(min(e + 3u, p.lastA))).x);
}

vec4 loadB4(uint e) {
	if (VEC_B) {
		return FETCH_B(int(e >> 2));
	}
	return vec4(FETCH_B(int(min(e, p.lastB))).x, FETCH_B(int(min(e + 1u, p.lastB))).x,
		FETCH_B(int(min(e + 2u, p.lastB))).x, FETCH_B(int(min(e + 3u, p.lastB))).x);
}

// keep zeroes the components of v whose k index (k, k+1, k+2, k+3) is >= K.
vec4 keep(vec4 v, uint k) {
	return mix(vec4(0.0), v, lessThan(uvec4(k) + uvec4(0u, 1u, 2u, 3u), uvec4(p.K)));
}

// loadA fills la[s] for rows m0.. and the four k values k..k+3 (tail: some
// may be >= K).
void loadA(uint s, uint m0, uint k, bool tail) {
	uint kq = tail ? min(k, (p.K - 1u) & ~3u) : k;
	if (!TRANS_A) {
		[[unroll]] for (uint r = 0u; r < TMA; r++) {
			uint m = min(m0 + r, p.M - 1u);
			vec4 v = loadA4(aOff + m * p.lda + kq);
			if (tail) {
				v = keep(v, k);
			}
			[[unroll]] for (uint t = 0u; t < 4u; t++) {
				la[s][t][r] = v[t];
			}
		}
	} else {
		// Stored K×M: four rows of op(A) per fetch.
		[[unroll]] for (uint t = 0u; t < 4u; t++) {
			uint kk = tail ? min(k + t, p.K - 1u) : k + t;
			[[unroll]] for (uint g = 0u; g < (TMA + 3u) / 4u; g++) {
				// Only groups wholly past M are clamped (their rows are not
				// stored); with VEC_A, m0 is a multiple of 4.
				uint m = min(m0 + 4u * g, VEC_A ? (p.M - 1u) & ~3u : p.M - 1u);
				vec4 v = loadA4(aOff + kk * p.lda + m);
				if (tail && k + t >= p.K) {
					v = vec4(0.0);
				}
				[[unroll]] for (uint i = 0u; i < 4u; i++) {
					if (4u * g + i < TMA) {
						la[s][t][4u * g + i] = v[i];
					}
				}
			}
		}
	}
}

// loadB fills bv for the block at k0. Stored K×N, a fetch holds four
// columns of one k; stored N×K (TRANS_B), four k values of one column, and
// the fetches of one column run consecutively so that each cache line is
// read once even when the rows of B lie a power of two apart.
void loadB(uint k0, bool tail) {
	[[unroll]] for (uint j = 0u; j < TN4; j++) {
		uint n = nBase + 4u * (lane + LANES * j);
		if (!TRANS_B) {
			n = min(n, (p.N - 1u) & ~3u);
			[[unroll]] for (uint q = 0u; q < KB4; q++) {
				[[unroll]] for (uint t = 0u; t < 4u; t++) {
					uint k = k0 + 4u * q + t;
					uint kk = tail ? min(k, p.K - 1u) : k;
					vec4 v = loadB4(bOff + kk * p.ldb + n);
					if (tail && k >= p.K) {
						v = vec4(0.0);
					}
					bv[q][t][j] = v;
				}
			}
		} else {
			[[unroll]] for (uint i = 0u; i < 4u; i++) {
				uint col = min(n + i, p.N - 1u);
				[[unroll]] for (uint q = 0u; q < KB4; q++) {
					uint k = k0 + 4u * q;
					uint kq = tail ? min(k, (p.K - 1u) & ~3u) : k;
					vec4 v = loadB4(bOff + col * p.ldb + kq);
					if (tail) {
						v = keep(v, k);
					}
					[[unroll]] for (uint t = 0u; t < 4u; t++) {
						bv[q][t][j][i] = v[t];
					}
				}
			}
		}
	}
}

// One block of K: 4·LANES values from k0. In the tail block (k0 + block > K)
// the values past K are zero. All operands of the block are fetched first;
// the products then run row by row so that one row's accumulators stay in
// registers through the whole block.
void block(uint k0, bool tail) {
	if (BCAST) {
		loadA(0u, mBase + aRow, k0 + aK, tail);
	} else {
		[[unroll]] for (uint q = 0u; q < KB4; q++) {
			loadA(q, mBase, k0 + 4u * q, tail);
		}
	}
	loadB(k0, tail);
	[[unroll]] for (uint r = 0u; r < TM; r++) {
		vec4 c[TN4];
		[[unroll]] for (uint j = 0u; j < TN4; j++) {
			c[j] = acc[r][j];
		}
		[[unroll]] for (uint q = 0u; q < KB4; q++) {
			[[unroll]] for (uint t = 0u; t < 4u; t++) {
				// The lane is a constant once the loops are unrolled: a
				// register shuffle.
				float a = BCAST ? subgroupShuffle(la[0][t][r % TMA], q + KB4 * (r / TMA)) : la[q][t][r];
				[[unroll]] for (uint j = 0u; j < TN4; j++) {
					c[j] = fma(vec4(a), bv[q][t][j], c[j]);
				}
			}
		}
		[[unroll]] for (uint j = 0u; j < TN4; j++) {
			acc[r][j] = c[j];
		}
	}
}

void main() {
	lane = BCAST ? gl_SubgroupInvocationID : gl_LocalInvocationID.x;
	nBase = gl_WorkGroupID.x * (LANES * TN4 * 4u);
	mBase = gl_WorkGroupID.y * TM;
	aRow = (lane / KB4) * TMA;
	aK = 4u * (lane % KB4);
	uint z = gl_WorkGroupID.z;
	aOff = p.offA + z * p.strideA;
	bOff = p.offB + z * p.strideB;
	[[unroll]] for (uint r = 0u; r < TM; r++) {
		[[unroll]] for (uint j = 0u; j < TN4; j++) {
			acc[r][j] = vec4(0.0);
		}
	}
	// One copy of the block code serves the last, partial block too (its
	// masking costs little), which halves the compile time.
	uint kb = 4u * KB4;
	for (uint k0 = 0u; k0 < p.K; k0 += kb) {
		block(k0, k0 + kb > p.K);
	}

	uint cOff = p.offC + z * p.strideC;
	vec4 bsum[TN4];
	[[unroll]] for (uint j = 0u; j < TN4; j++) {
		bsum[j] = vec4(0.0);
		if (BIAS) {
			uint last = p.offBias + p.N - 1u;
			uint e = p.offBias + min(nBase + 4u * (lane + LANES * j), p.N - 1u);
			bsum[j] = vec4(texelFetch(Bias, int(e)).x, texelFetch(Bias, int(min(e + 1u, last))).x,
				texelFetch(Bias, int(min(e + 2u, last))).x, texelFetch(Bias, int(min(e + 3u, last))).x);
		}
	}
	[[unroll]] for (uint r = 0u; r < TM; r++) {
		uint m = mBase + r;
		if (m >= p.M) {
			break;
		}
		[[unroll]] for (uint j = 0u; j < TN4; j++) {
			uint n = nBase + 4u * (lane + LANES * j);
			if (n >= p.N) {
				break;
			}
			vec4 v = p.alpha * acc[r][j] + bsum[j];
			uint e = cOff + m * p.ldc + n;
			if (VEC_C) {
				if (READ_C) {
					v += p.beta * c4[e >> 2];
				}
				c4[e >> 2] = v;
			} else {
				[[unroll]] for (uint i = 0u; i < 4u; i++) {
					if (n + i < p.N) {
						float x = v[i];
						if (READ_C) {
							x += p.beta * c[e + i];
						}
						c[e + i] = x;
					}
				}
			}
		}
	}
}
