// Exact unsigned division by a divisor that is uniform across the dispatch,
// without a hardware divide (which CPU drivers such as lavapipe scalarize):
// the host passes the divisor's magic multiplier m and shifts
// sh = sh1 | sh2 << 8 from kernels.arMagic (Granlund and Montgomery, "Division
// by invariant integers using multiplication", 1994, figure 4.1). Exact for
// every 32-bit n.
uint divMagic(uint n, uint m, uint sh) {
	uint hi, lo;
	umulExtended(n, m, hi, lo);
	return (hi + ((n - hi) >> (sh & 0xffu))) >> (sh >> 8u);
}
