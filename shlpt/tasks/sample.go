package tasks

import (
	"hash/fnv"
	"math/rand/v2"
)

// rngFor returns the random stream for one draw. Each (task, stream) pair
// gets its own PCG generator seeded with the run's seed and a hash of the
// names, so a draw depends only on the seed, the task and the class it is
// for: not on map order, on the other classes, or on which tasks ran before.
func rngFor(seed uint64, task, stream string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte("shlpt-vk/tasks\x00" + task + "\x00" + stream))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// draw returns k elements of pool drawn uniformly without replacement, in
// the order drawn (a partial Fisher–Yates shuffle of a copy of pool). k is
// clamped to len(pool); a negative k takes all.
func draw(rng *rand.Rand, pool []int, k int) []int {
	if k < 0 || k > len(pool) {
		k = len(pool)
	}
	p := append([]int(nil), pool...)
	for i := 0; i < k; i++ {
		j := i + rng.IntN(len(p)-i)
		p[i], p[j] = p[j], p[i]
	}
	return p[:k]
}

// shuffle permutes idx in place with its own stream.
func shuffle(seed uint64, task, stream string, idx []int) {
	rng := rngFor(seed, task, stream)
	rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
}

// addK adds two per-class sizes where a negative size means "all".
func addK(a, b int) int {
	if a < 0 || b < 0 {
		return -1
	}
	return a + b
}

// scaleK multiplies a per-class size by the QA factor, keeping "all".
func scaleK(k int) int {
	if k < 0 {
		return k
	}
	return QAScale * k
}
