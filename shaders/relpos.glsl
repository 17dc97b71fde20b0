// T5's relative position buckets from precomputed thresholds, shared by the
// relpos* shaders. For a relative position rel = key − query:
//   bidirectional: base = rel > 0 ? nbh : 0, r = |rel|;
//   causal:        base = 0, r = max(−rel, 0);
//   bucket = base + (r < me ? r : me + #{k : thr[k] <= r}),
// where nbh is num_buckets (halved when bidirectional), me = nbh / 2 and
// thr[k] is the smallest distance whose logarithmic bucket is me + k + 1,
// computed on the host exactly as HuggingFace computes the buckets (in
// float32), so that the boundaries match it bit for bit.
//
// The including shader declares, before including this file, the push
// constants p with the fields nbh, me, bidir, nthr and thr[RELPOS_MAX_THR].

// relposBucket4 returns the buckets of four relative positions.
ivec4 relposBucket4(ivec4 rel) {
	ivec4 base = ivec4(0);
	ivec4 r;
	if (p.bidir != 0) {
		base = ivec4(greaterThan(rel, ivec4(0))) * p.nbh;
		r = abs(rel);
	} else {
		r = max(-rel, ivec4(0));
	}
	ivec4 b = ivec4(p.me);
	for (int k = 0; k < p.nthr; k++) {
		b += ivec4(greaterThanEqual(r, ivec4(p.thr[k])));
	}
	return base + mix(b, r, lessThan(r, ivec4(p.me)));
}
