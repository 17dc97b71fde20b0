#version 450
// Matrix product, tiled variant (GPUs): C = alpha·op(A)·op(B) + beta·C
// (+ bias[n] on every row), batched over gl_WorkGroupID.z. See
// kernels/matmul.go for the operand layouts.
//
// A workgroup of WG_X × WG_Y invocations computes a BM × BN tile of C. For
// each step of BK values of K it stages a BM × BK tile of op(A) and a
// BK × BN tile of op(B) in shared memory (loads spread over all invocations,
// consecutive invocations on consecutive addresses of the stored layout,
// zero outside the matrices), then each invocation accumulates its
// TM × TN outputs: rows ty + WG_Y·i, columns tx + WG_X·j, so that
// neighbouring invocations read neighbouring shared-memory words.
//
// Compiled with -DW16 (matmul_tiled_w16), B holds 16-bit floats.
layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 0) const uint WG_X = 16; // BN / TN
layout(constant_id = 1) const uint WG_Y = 16; // BM / TM
layout(constant_id = 2) const uint TM = 4;
layout(constant_id = 3) const uint TN = 4;
layout(constant_id = 4) const uint BK = 16;
layout(constant_id = 5) const bool TRANS_A = false;
layout(constant_id = 6) const bool TRANS_B = false;
layout(constant_id = 7) const bool BIAS = false;
layout(constant_id = 8) const bool READ_C = false; // beta != 0

const uint BM = WG_Y * TM;
const uint BN = WG_X * TN;
const uint THREADS = WG_X * WG_Y;

layout(push_constant) uniform Push {
	uint M, N, K;
	uint lda, ldb, ldc;
	uint offA, offB, offC, offBias; // element shifts inside the bound ranges
	uint strideA, strideB, strideC; // per batch index (gl_WorkGroupID.z)
	float alpha, beta;
} p;

layout(std430, binding = 0) readonly buffer A { float a[]; };
#ifdef W16
// B holds float16 or bfloat16 values (BF16), read as 32-bit words of two
// values each and widened to fp32 on load; the offsets and leading
// dimensions are in 16-bit elements.
#include "half.glsl"
layout(constant_id = 9) const bool BF16 = false;
layout(std430, binding = 1) readonly buffer B { uint bw[]; };
float loadB16(uint e) {
	return widen16(half16(bw[e >> 1], e), BF16);
}
#define LOAD_B(e) loadB16(e)
#else
layout(std430, binding = 1) readonly buffer B { float b[]; };
#define LOAD_B(e) b[e]
#endif
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) buffer C { float c[]; };

// One padding word per row keeps column walks off a single bank.
shared float As[BK][BM + 1];
shared float Bs[BK][BN + 1];

void main() {
	uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
	uint tid = ty * WG_X + tx;
	uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
	uint z = gl_WorkGroupID.z;
	uint aOff = p.offA + z * p.strideA, bOff = p.offB + z * p.strideB;

	float acc[TM][TN];
	for (uint i = 0u; i < TM; i++) {
		for (uint j = 0u; j < TN; j++) {
			acc[i][j] = 0.0;
		}
	}

	for (uint k0 = 0u; k0 < p.K; k0 += BK) {
		for (uint e = tid; e < BM * BK; e += THREADS) {
			// Stored M×K: consecutive invocations walk k; stored K×M: m.
			uint r = TRANS_A ? e % BM : e / BK;
			uint kk = TRANS_A ? e / BM : e % BK;
			uint m = m0 + r, k = k0 + kk;
			float v = 0.0;
			if (m < p.M && k < p.K) {
				v = a[aOff + (TRANS_A ? k * p.lda + m : m * p.lda + k)];
			}
			As[kk][r] = v;
		}
		for (uint e = tid; e < BN * BK; e += THREADS) {
			// Stored K×N: consecutive invocations walk n; stored N×K: k.
			uint col = TRANS_B ? e / BK : e % BN;
			uint kk = TRANS_B ? e % BK : e / BN;
			uint n = n0 + col, k = k0 + kk;
			float v = 0.0;
			if (n < p.N && k < p.K) {
				v = LOAD_B(bOff + (TRANS_B ? n * p.ldb + k : k * p.ldb + n));
			}
			Bs[kk][col] = v;
		}
		barrier();
		for (uint kk = 0u; kk < BK; kk++) {
			float av[TM], bv[TN];
			for (uint i = 0u; i < TM; i++) {
				av[i] = As[kk][ty + WG_Y * i];
			}
			for (uint j = 0u; j < TN; j++) {
				bv[j] = Bs[kk][tx + WG_X * j];
			}
			for (uint i = 0u; i < TM; i++) {
				for (uint j = 0u; j < TN; j++) {
					acc[i][j] = fma(av[i], bv[j], acc[i][j]);
				}
			}
		}
		barrier();
	}

	uint cOff = p.offC + z * p.strideC;
	for (uint i = 0u; i < TM; i++) {
		uint m = m0 + ty + WG_Y * i;
		for (uint j = 0u; j < TN; j++) {
			uint n = n0 + tx + WG_X * j;
			if (m < p.M && n < p.N) {
				float v = p.alpha * acc[i][j];
				if (BIAS) {
					v += bias[p.offBias + n];
				}
				uint e = cOff + m * p.ldc + n;
				if (READ_C) {
					v += p.beta * c[e];
				}
				c[e] = v;
			}
		}
	}
}
