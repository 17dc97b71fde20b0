// Counter-based random numbers for dropout: a keep/drop decision is a pure
// function of (seed, site, index), so backward recomputes the forward mask
// without storing it. seed changes every step (a device buffer advanced by
// dropout_tick, so recorded programs replay with fresh masks); site tells
// dropout layers apart. The mix is murmur3's 32-bit finalizer; kernels.dropKeep
// is the same function in Go.
uint dropHash(uint seed, uint site, uint index) {
	uint h = index * 0x9E3779B1u ^ (site * 0x85EBCA77u + seed * 0xC2B2AE3Du);
	h ^= h >> 16;
	h *= 0x85EBCA6Bu;
	h ^= h >> 13;
	h *= 0xC2B2AE35u;
	h ^= h >> 16;
	return h;
}

// dropKeep is true when element index survives dropout with probability
// 1 - p: the top 24 bits of the hash as a uniform number in [0, 1).
bool dropKeep(uint seed, uint site, uint index, float p) {
	return float(dropHash(seed, site, index) >> 8u) * (1.0 / 16777216.0) >= p;
}
