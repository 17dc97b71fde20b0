#version 450
// Backward of the relative position bias, a deterministic scatter-add into
// the table: the invocation for table entry (bucket, h) walks the relative
// positions in increasing order and, for each in its bucket, the queries in
// increasing order,
//   dtable[bucket, h] = Σ dbias[h, q, q + qoff + rel],
// plus the old value (texel view dto) when ACCUM. dbias (H, Tq, Tk), dtable
// (num_buckets, H).
#include "norm_rows.glsl"

#define RELPOS_MAX_THR 20
layout(local_size_x = 64) in;
layout(constant_id = 0) const bool ACCUM = false;

layout(push_constant) uniform Push {
	int nb; // num_buckets
	int H;
	int Tq;
	int Tk;
	int qoff;
	int nbh;
	int me;
	int bidir;
	int nthr;
	int dbs;
	int dtos;
	int dts;
	int thr[RELPOS_MAX_THR];
} p;

#include "relpos.glsl"

layout(binding = 0) uniform samplerBuffer dbias; // float texels
layout(binding = 1) uniform samplerBuffer dto;
layout(std430, binding = 2) writeonly buffer DT { float dt[]; };

void main() {
	int e = int(gl_GlobalInvocationID.x);
	if (e >= p.nb * p.H) {
		return;
	}
	int bucket = e / p.H;
	int h = e % p.H;
	float s = 0.0;
	// rel = k − (q + qoff) for q in [0, Tq), k in [0, Tk).
	for (int rel = -(p.Tq - 1 + p.qoff); rel <= p.Tk - 1 - p.qoff; rel++) {
		if (relposBucket4(ivec4(rel)).x != bucket) {
			continue;
		}
		int q0 = max(0, -p.qoff - rel);
		int q1 = min(p.Tq - 1, p.Tk - 1 - p.qoff - rel);
		for (int q = q0; q <= q1; q++) {
			s += texelFetch(dbias, p.dbs + (h * p.Tq + q) * p.Tk + q + p.qoff + rel).x;
		}
	}
	if (ACCUM) {
		s += load1(dto, p.dtos + e);
	}
	dt[p.dts + e] = s;
}
