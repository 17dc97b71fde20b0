package t5

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// topK selects the same candidates, in the same order, as a stable sort of
// all of them by score (ties: lower beam, then lower token).
func TestTopKMatchesStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 50; trial++ {
		K, V := 1+rng.IntN(5), 2+rng.IntN(40)
		var all []cand
		top := topK{n: 2 * K}
		for j := 0; j < K; j++ {
			for v := 0; v < V; v++ {
				// Few distinct scores, so that ties are common.
				c := cand{score: float64(rng.IntN(6)), token: v, beam: j}
				all = append(all, c)
				top.offer(c)
			}
		}
		sort.SliceStable(all, func(x, y int) bool { return all[x].score > all[y].score })
		for i := 0; i < 2*K; i++ {
			if top.c[i] != all[i] {
				t.Fatalf("K %d V %d: rank %d is %+v, the stable sort has %+v", K, V, i, top.c[i], all[i])
			}
		}
	}
}
