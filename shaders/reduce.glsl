// Fixed-order workgroup reductions, shared by the reduce*, xent* and
// gradnorm* shaders. The including shader declares WG, the number of
// invocations in a workgroup (a multiple of the subgroup size), before the
// #include.
//
// Within a subgroup the values are combined by a butterfly of
// subgroupShuffleXor steps: every lane computes the same tree (addition is
// commutative), so the result is the same on every lane and on every run.
// Across subgroups, the per-subgroup results are combined in subgroup order
// through shared memory. No atomics: the order is fixed by the workgroup
// size and the device's subgroup size.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

shared float redF[WG];
shared int redI[WG];

float wgSum(float v) {
	for (uint k = 1u; k < gl_SubgroupSize; k <<= 1u) {
		v += subgroupShuffleXor(v, k);
	}
	if (gl_NumSubgroups == 1u) {
		return v;
	}
	barrier(); // earlier readers of redF are done
	if (gl_SubgroupInvocationID == 0u) {
		redF[gl_SubgroupID] = v;
	}
	barrier();
	float s = redF[0];
	for (uint i = 1u; i < gl_NumSubgroups; i++) {
		s += redF[i];
	}
	return s;
}

float wgMax(float v) {
	for (uint k = 1u; k < gl_SubgroupSize; k <<= 1u) {
		v = max(v, subgroupShuffleXor(v, k));
	}
	if (gl_NumSubgroups == 1u) {
		return v;
	}
	barrier();
	if (gl_SubgroupInvocationID == 0u) {
		redF[gl_SubgroupID] = v;
	}
	barrier();
	float m = redF[0];
	for (uint i = 1u; i < gl_NumSubgroups; i++) {
		m = max(m, redF[i]);
	}
	return m;
}

// better reports whether (v, i) wins over (w, j): larger value, or the same
// value at a smaller index (the first maximum wins).
bool better(float v, int i, float w, int j) {
	return v > w || (v == w && i < j);
}

// wgArgMax combines every invocation's (v, i) into the maximum and its
// smallest index.
void wgArgMax(inout float v, inout int i) {
	for (uint k = 1u; k < gl_SubgroupSize; k <<= 1u) {
		float w = subgroupShuffleXor(v, k);
		int j = subgroupShuffleXor(i, k);
		if (better(w, j, v, i)) {
			v = w;
			i = j;
		}
	}
	if (gl_NumSubgroups == 1u) {
		return;
	}
	barrier();
	if (gl_SubgroupInvocationID == 0u) {
		redF[gl_SubgroupID] = v;
		redI[gl_SubgroupID] = i;
	}
	barrier();
	v = redF[0];
	i = redI[0];
	for (uint s = 1u; s < gl_NumSubgroups; s++) {
		if (better(redF[s], redI[s], v, i)) {
			v = redF[s];
			i = redI[s];
		}
	}
}
