package kernels

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// SHLPT's threshold partition of a prompt pool: for every row b of the
// similarity weights alpha (B, P) (a softmax over the P prompts), the
// prompts whose weight exceeds the threshold δ are kept and mixed with
// their renormalized weights, and some prompts are the row's negatives for
// the contrastive loss. See shaders/partition.comp.

var partitionKernel = kernel("partition", 9, gpu.TexelR32F, gpu.TexelR32F, gpu.TexelR32F, gpu.ReadWrite)

// The MODE specialization constant of shaders/partition.comp.
const (
	partitionMix         = 0
	partitionMixBackward = 1
	partitionNegatives   = 2
)

// PartitionOpts are the settings of Partition.
type PartitionOpts struct {
	// Delta is the threshold δ: alpha[b, j] > δ is kept (alpha = δ is not).
	Delta float32
	// AllDissimilar keeps nothing and makes every prompt a negative of
	// every row.
	AllDissimilar bool
	// BatchNegatives makes prompt j a negative of every row when its mean
	// weight over the batch rows is below δ; otherwise prompt j is a
	// negative of row b when alpha[b, j] ≤ δ.
	BatchNegatives bool
}

// flags is the flags push constant of shaders/partition.comp.
func (o PartitionOpts) flags(accumulate bool) uint32 {
	return arFlag(o.AllDissimilar) | 2*arFlag(o.BatchNegatives) | 4*arFlag(accumulate)
}

// longRowWG is the workgroup size of a row-per-workgroup shader whose loops
// step through rows of n elements WG at a time: reduceWG, doubled while a
// loop would run longer than arLoopCap (rows longer than 131072 elements on
// lavapipe, where reduceWG is one subgroup of 8).
func longRowWG(d *gpu.Device, op string, n int64) (uint32, error) {
	wg := reduceWG(d)
	for int64(wg)*arLoopCap(d) < n && 2*wg <= d.Info().MaxWorkgroupInvocations {
		wg *= 2
	}
	if int64(wg)*arLoopCap(d) < n {
		return 0, fmt.Errorf("%s: rows of %d elements are longer than this device can reduce in one workgroup", op, n)
	}
	return wg, nil
}

// rowPieces calls f for consecutive pieces of whole rows of an (n, C)
// array, each small enough for one binding: the first row and the count.
func rowPieces(d *gpu.Device, op string, n, C int64, f func(r0, rows int64) error) error {
	limit := arBindElems(d)
	if C > limit {
		return fmt.Errorf("%s: a row of %d elements exceeds the %d elements one binding may hold", op, C, limit)
	}
	per := limit / C
	for r0 := int64(0); r0 < n; r0 += per {
		if err := f(r0, min(per, n-r0)); err != nil {
			return err
		}
	}
	return nil
}

// Partition sets, for alpha (B, P) and keep[b, j] = alpha[b, j] > δ (never
// with AllDissimilar):
//
//	mixed[b, j] = keep[b, j] ? alpha[b, j] / Σ_k keep[b, k]·alpha[b, k] : 0
//
// (a row with nothing kept is all zeros), and negatives[b, j] to 1 or 0:
// 1 with AllDissimilar; else with BatchNegatives whether the mean of
// alpha[·, j] over the B rows is below δ (the same for every row); else
// whether alpha[b, j] ≤ δ. mixed and negatives are (B, P) and must not
// overlap alpha or each other; alpha is expected non-negative (softmax
// weights). With BatchNegatives mixed holds the column means while the
// negatives are computed.
func Partition(r *gpu.Recorder, mixed, negatives, alpha Mem, B, P int64, o PartitionOpts) error {
	op := fmt.Sprintf("partition %dx%d", B, P)
	if err := arDims(op, B, P); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"mixed", mixed, B * P}, arOperand{"negatives", negatives, B * P},
		arOperand{"alpha", alpha, B * P})
	if err != nil {
		return err
	}
	batch := o.BatchNegatives && !o.AllDissimilar
	if batch {
		if err := Mean(r, mixed, alpha, 1, B, P); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	pn, err := pipeline(d, op, partitionKernel, wg1D, partitionNegatives)
	if err != nil {
		return err
	}
	err = chunks(B*P, arBindElems(d), func(lo, hi int64) error {
		ab, ao := texelSpan(d, alpha.At(lo), hi-lo, 1)
		mb, mo := ab, ao
		if batch {
			mb, mo = texelSpan(d, mixed, P, 1)
		}
		yb, yo := span(d, negatives.At(lo), hi-lo)
		push := []uint32{uint32(hi - lo), uint32(P), ao, mo, ao, yo, f32(o.Delta), o.flags(false), uint32(lo % P)}
		return r.Dispatch(pn, grid1D(d, hi-lo), push, ab, mb, ab, yb)
	})
	if err != nil {
		return err
	}
	wg, err := longRowWG(d, op, P)
	if err != nil {
		return err
	}
	pm, err := pipeline(d, op, partitionKernel, wg, partitionMix)
	if err != nil {
		return err
	}
	return rowPieces(d, op, B, P, func(r0, rows int64) error {
		ab, ao := texelSpan(d, alpha.At(r0*P), rows*P, 1)
		yb, yo := span(d, mixed.At(r0*P), rows*P)
		push := []uint32{uint32(rows), uint32(P), ao, ao, ao, yo, f32(o.Delta), o.flags(false), 0}
		return r.Dispatch(pm, arRowGrid(d, rows), push, ab, ab, ab, yb)
	})
}

// PartitionBackward sets dalpha (adds with accumulate) for the upstream
// gradient g of Partition's mixed: with s = Σ_{j kept} alpha[b, j],
//
//	dalpha[b, k] = (g[b, k] − Σ_{j kept} g[b, j]·mixed[b, j]) / s
//
// for a kept k and 0 otherwise (the negatives and what is kept are
// constants). dalpha, g, alpha and mixed are (B, P); dalpha must not
// overlap the others.
func PartitionBackward(r *gpu.Recorder, dalpha, g, alpha, mixed Mem, B, P int64, o PartitionOpts, accumulate bool) error {
	op := fmt.Sprintf("partition_backward %dx%d", B, P)
	if err := arDims(op, B, P); err != nil {
		return err
	}
	d, err := arCheck(op, arOperand{"dalpha", dalpha, B * P}, arOperand{"g", g, B * P},
		arOperand{"alpha", alpha, B * P}, arOperand{"mixed", mixed, B * P})
	if err != nil {
		return err
	}
	wg, err := longRowWG(d, op, P)
	if err != nil {
		return err
	}
	p, err := pipeline(d, op, partitionKernel, wg, partitionMixBackward)
	if err != nil {
		return err
	}
	return rowPieces(d, op, B, P, func(r0, rows int64) error {
		n := rows * P
		ab, ao := texelSpan(d, alpha.At(r0*P), n, 1)
		gb, gofs := texelSpan(d, g.At(r0*P), n, 1)
		mb, mo := texelSpan(d, mixed.At(r0*P), n, 1)
		yb, yo := span(d, dalpha.At(r0*P), n)
		push := []uint32{uint32(rows), uint32(P), ao, gofs, mo, yo, f32(o.Delta), o.flags(accumulate), 0}
		return r.Dispatch(p, arRowGrid(d, rows), push, ab, gb, mb, yb)
	})
}

// Float64 references.

// partitionKeep reports whether Partition keeps weight a.
func partitionKeep(a float64, o PartitionOpts) bool {
	return !o.AllDissimilar && a > float64(o.Delta)
}

// PartitionRef returns Partition's mixed and negatives (B, P) for alpha
// (B, P).
func PartitionRef(alpha []float64, B, P int, o PartitionOpts) (mixed, negatives []float64) {
	mixed, negatives = make([]float64, B*P), make([]float64, B*P)
	delta := float64(o.Delta)
	mean := make([]float64, P)
	SumRef(mean, alpha, 1, B, P, 1/float64(B))
	for b := 0; b < B; b++ {
		row := alpha[b*P : (b+1)*P]
		s := 0.0
		for _, a := range row {
			if partitionKeep(a, o) {
				s += a
			}
		}
		for j, a := range row {
			if partitionKeep(a, o) {
				mixed[b*P+j] = a / s
			}
			neg := true
			switch {
			case o.AllDissimilar:
			case o.BatchNegatives:
				neg = mean[j] < delta
			default:
				neg = a <= delta
			}
			if neg {
				negatives[b*P+j] = 1
			}
		}
	}
	return mixed, negatives
}

// PartitionBackwardRef returns the gradient of Σ g·mixed with respect to
// alpha (B, P), mixed from PartitionRef.
func PartitionBackwardRef(g, alpha []float64, B, P int, o PartitionOpts) []float64 {
	mixed, _ := PartitionRef(alpha, B, P, o)
	da := make([]float64, B*P)
	for b := 0; b < B; b++ {
		s, gm := 0.0, 0.0
		for j := b * P; j < (b+1)*P; j++ {
			if partitionKeep(alpha[j], o) {
				s += alpha[j]
				gm += g[j] * mixed[j]
			}
		}
		for k := b * P; k < (b+1)*P; k++ {
			if partitionKeep(alpha[k], o) {
				da[k] = (g[k] - gm) / s
			}
		}
	}
	return da
}
