package kernels

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Cross-entropy fused with log-softmax, as torch.nn.functional.cross_entropy
// with ignore_index=-100 and reduction="mean": over the rows r of logits
// (n, V) whose label is not -100,
//
//	loss = Σ_r (logsumexp(logits[r]) − logits[r, labels[r]]) / count
//
// with count the number of such rows, counted on the device. The gradient is
// dlogits[r] = (softmax(logits[r]) − onehot(labels[r]))·dloss/count, 0 for
// ignored rows. When every row is ignored the loss and the gradients are 0
// (torch returns NaN there: 0/0).
//
// Labels are read on the device only: a label outside [0, V) other than
// -100 is clamped into range, silently. Callers validate labels where they
// build them (the t5 package does).
//
// One workgroup per row reduces the row in a fixed order; the rows are
// processed in pieces whose logits fit in one binding.

var (
	xentRowKernel4  = kernel("xent_row", 10, gpu.TexelRGBA32F, gpu.ReadOnly, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite) // VEC4 = 1
	xentRowKernel1  = kernel("xent_row", 10, gpu.TexelR32F, gpu.ReadOnly, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)    // VEC4 = 0
	xentCountKernel = kernel("xent_count", 6, gpu.ReadOnly, gpu.TexelR32F, gpu.ReadWrite, gpu.ReadWrite)
)

// IgnoreIndex is the label of rows that do not count in the loss.
const IgnoreIndex = -100

// The MODE specialization constants of shaders/xent_row.comp and
// xent_count.comp.
const (
	xentForward  = 0
	xentBackward = 1
	xentFused    = 2

	xentCountScale = 0
	xentCountLoss  = 1
)

// CrossEntropyScratch is the number of elements of the scratch array the
// cross-entropy calls need for n rows: per-row log-sum-exp and loss, the
// count of non-ignored rows and the gradient scale.
func CrossEntropyScratch(n int64) int64 { return 2*n + 2 }

// xentCountWG is the workgroup of xent_count: one workgroup over all labels.
func xentCountWG(d *gpu.Device) uint32 {
	wg := reduceWG(d)
	for wg < 256 && 2*wg <= d.Info().MaxWorkgroupInvocations {
		wg *= 2
	}
	return wg
}

type xentArgs struct {
	op                                         string
	loss, dlogits, dloss, scratch, logits, lab Mem
	n, V                                       int64
	acc                                        bool
}

func (x xentArgs) check(withLoss, withGrad bool) (*gpu.Device, error) {
	if err := arDims(x.op, x.n, x.V); err != nil {
		return nil, err
	}
	ops := []arOperand{{"logits", x.logits, x.n * x.V}, {"labels", x.lab, x.n},
		{"scratch", x.scratch, CrossEntropyScratch(x.n)}}
	if withLoss {
		ops = append(ops, arOperand{"loss", x.loss, 1})
	}
	if withGrad {
		ops = append(ops, arOperand{"dlogits", x.dlogits, x.n * x.V})
		if x.dloss.Buf != nil {
			ops = append(ops, arOperand{"dloss", x.dloss, 1})
		}
	}
	d, err := arCheck(x.op, ops...)
	if err != nil {
		return nil, err
	}
	if most := int64(xentCountWG(d)) * arLoopCap(d); x.n > most {
		return nil, fmt.Errorf("%s: %d rows; this device counts at most %d in one workgroup", x.op, x.n, most)
	}
	return d, nil
}

// count records xent_count: the count and, by mode, the gradient scale or
// the loss.
func (x xentArgs) count(r *gpu.Recorder, d *gpu.Device, mode uint32) error {
	p, err := pipeline(d, x.op, xentCountKernel, xentCountWG(d), mode)
	if err != nil {
		return err
	}
	lb, lo := span(d, x.lab, x.n)
	sb, so := span(d, x.scratch, CrossEntropyScratch(x.n))
	db, do := texelSpan(d, x.scratch, 1, 1)
	hasDloss := mode == xentCountScale && x.dloss.Buf != nil
	if hasDloss {
		db, do = texelSpan(d, x.dloss, 1, 1)
	}
	yb, yo := sb, so
	if mode == xentCountLoss {
		yb, yo = span(d, x.loss, 1)
	}
	push := []uint32{uint32(x.n), lo, do, arFlag(hasDloss), so, yo}
	return r.Dispatch(p, [3]uint32{1, 1, 1}, push, lb, db, sb, yb)
}

// rows records xent_row over all rows, in pieces that fit one binding.
func (x xentArgs) rows(r *gpu.Recorder, d *gpu.Device, mode uint32) error {
	grad := mode != xentForward
	offs := []int64{x.logits.Off}
	if grad {
		offs = append(offs, x.dlogits.Off)
	}
	vec4 := x.V%4 == 0 && arAligned4(offs...)
	k, texel := xentRowKernel1, int64(1)
	if vec4 {
		k, texel = xentRowKernel4, 4
	}
	wg := reduceWG(d)
	if iters := (x.V + int64(wg)*texel - 1) / (int64(wg) * texel); iters > arLoopCap(d) {
		return fmt.Errorf("%s: rows of %d logits are longer than this device can reduce in one workgroup", x.op, x.V)
	}
	p, err := pipeline(d, x.op, k, wg, arFlag(vec4), mode)
	if err != nil {
		return err
	}
	limit := arBindElems(d)
	if x.V > limit {
		return fmt.Errorf("%s: a row of %d logits exceeds the %d elements one binding may hold", x.op, x.V, limit)
	}
	per := limit / x.V
	stats := CrossEntropyScratch(x.n)
	for r0 := int64(0); r0 < x.n; r0 += per {
		rows := min(per, x.n-r0)
		xb, xo := texelSpan(d, x.logits.At(r0*x.V), rows*x.V, texel)
		lb, lo := span(d, x.lab.At(r0), rows)
		sib, sio := texelSpan(d, x.scratch, stats, 1)
		sb, so := span(d, x.scratch, stats)
		gb, gofs := sb, so
		if grad {
			gb, gofs = span(d, x.dlogits.At(r0*x.V), rows*x.V)
		}
		if vec4 {
			if err := arShifts4(x.op, xo); err != nil {
				return err
			}
			if err := arShifts4(x.op, gofs); grad && err != nil {
				return err
			}
		}
		push := []uint32{uint32(rows), uint32(x.V), xo, lo, sio, so, gofs, uint32(r0), uint32(x.n), arFlag(x.acc)}
		if err := r.Dispatch(p, arRowGrid(d, rows), push, xb, lb, sib, sb, gb); err != nil {
			return err
		}
	}
	return nil
}

// CrossEntropy sets loss[0] to the mean cross-entropy of the rows of logits
// whose label is not IgnoreIndex, and keeps the per-row statistics that
// CrossEntropyBackward needs in scratch. logits is (n, V), labels (n,)
// int32, loss (1,), scratch (CrossEntropyScratch(n),).
func CrossEntropy(r *gpu.Recorder, loss, scratch, logits, labels Mem, n, V int64) error {
	x := xentArgs{op: fmt.Sprintf("cross_entropy %dx%d", n, V), loss: loss, scratch: scratch, logits: logits, lab: labels, n: n, V: V}
	d, err := x.check(true, false)
	if err != nil {
		return err
	}
	if err := x.rows(r, d, xentForward); err != nil {
		return err
	}
	return x.count(r, d, xentCountLoss)
}

// CrossEntropyBackward sets dlogits[r] = (softmax(logits[r]) −
// onehot(labels[r]))·dloss[0]/count, 0 for ignored rows (adds with
// accumulate), from the scratch that CrossEntropy filled. dloss is a device
// scalar (1,); nil means 1. dlogits (n, V) may be logits itself, so that
// the logits' memory holds their gradient afterwards (without accumulate).
func CrossEntropyBackward(r *gpu.Recorder, dlogits, dloss, scratch, logits, labels Mem, n, V int64, accumulate bool) error {
	x := xentArgs{op: fmt.Sprintf("cross_entropy_backward %dx%d", n, V), dlogits: dlogits, dloss: dloss, scratch: scratch,
		logits: logits, lab: labels, n: n, V: V, acc: accumulate}
	d, err := x.check(false, true)
	if err != nil {
		return err
	}
	if err := x.count(r, d, xentCountScale); err != nil {
		return err
	}
	return x.rows(r, d, xentBackward)
}

// CrossEntropyFused computes the loss and the gradient in one pass over the
// logits, for a loss that is the last op: CrossEntropy followed by
// CrossEntropyBackward with the same arguments. dlogits may be logits
// itself (without accumulate).
func CrossEntropyFused(r *gpu.Recorder, loss, dlogits, dloss, scratch, logits, labels Mem, n, V int64, accumulate bool) error {
	x := xentArgs{op: fmt.Sprintf("cross_entropy_fused %dx%d", n, V), loss: loss, dlogits: dlogits, dloss: dloss, scratch: scratch,
		logits: logits, lab: labels, n: n, V: V, acc: accumulate}
	d, err := x.check(true, true)
	if err != nil {
		return err
	}
	if err := x.count(r, d, xentCountScale); err != nil {
		return err
	}
	if err := x.rows(r, d, xentFused); err != nil {
		return err
	}
	return x.count(r, d, xentCountLoss)
}

// xentLabel is the class a label selects (clamped into [0, V)) and whether
// the row counts.
func xentLabel(l int32, V int) (int, bool) {
	if l == IgnoreIndex {
		return 0, false
	}
	return min(max(int(l), 0), V-1), true
}

// CrossEntropyRef returns the mean cross-entropy of the rows of logits (n, V)
// whose label is not IgnoreIndex, 0 if there are none.
func CrossEntropyRef(logits []float64, labels []int32, n, V int) float64 {
	sum, count := 0.0, 0
	for r := 0; r < n; r++ {
		c, ok := xentLabel(labels[r], V)
		if !ok {
			continue
		}
		row := logits[r*V : (r+1)*V]
		sum += logSumExp(row) - row[c]
		count++
	}
	if count == 0 {
		return 0
	}
	return sum / float64(count)
}

// CrossEntropyBackwardRef returns dloss times the gradient of
// CrossEntropyRef with respect to the logits.
func CrossEntropyBackwardRef(logits []float64, labels []int32, n, V int, dloss float64) []float64 {
	g := make([]float64, n*V)
	count := 0
	for r := 0; r < n; r++ {
		if _, ok := xentLabel(labels[r], V); ok {
			count++
		}
	}
	if count == 0 {
		return g
	}
	for r := 0; r < n; r++ {
		c, ok := xentLabel(labels[r], V)
		if !ok {
			continue
		}
		row := logits[r*V : (r+1)*V]
		lse := logSumExp(row)
		for j, v := range row {
			p := math.Exp(v - lse)
			if j == c {
				p--
			}
			g[r*V+j] = p * dloss / float64(count)
		}
	}
	return g
}

func logSumExp(row []float64) float64 {
	m := math.Inf(-1)
	for _, v := range row {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range row {
		s += math.Exp(v - m)
	}
	return m + math.Log(s)
}

// Benchmarks: T5-large's decoder logits, 8 × 5 target tokens over the
// 32128-word vocabulary.

func init() {
	for _, mode := range []string{"cross_entropy", "cross_entropy_backward", "cross_entropy_fused"} {
		registerBench(BenchOp{Name: mode, Shapes: []string{"40x32128"},
			Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
				n, V, err := rowsCols(shape)
				if err != nil {
					return nil, err
				}
				bufs, free, err := benchBuffers(d, n*V, n*V, n, CrossEntropyScratch(n), 1)
				if err != nil {
					return nil, err
				}
				labels := make([]int32, n)
				for i := range labels {
					labels[i] = int32((i * 7919) % int(V))
				}
				labels[n-1] = IgnoreIndex
				if err := gpu.WriteSlice(bufs[2], 0, labels); err != nil {
					free()
					return nil, err
				}
				x, g, l, s, loss := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2]), Whole(bufs[3]), Whole(bufs[4])
				c := &BenchCase{Op: mode, Shape: shape, Free: free}
				switch mode {
				case "cross_entropy":
					c.Bytes = 4 * float64(n*V)
					c.Record = func(r *gpu.Recorder) error { return CrossEntropy(r, loss, s, x, l, n, V) }
				case "cross_entropy_backward":
					// The statistics come from a forward run before timing.
					rec := d.NewRecorder(false)
					if err := CrossEntropy(rec, loss, s, x, l, n, V); err != nil {
						free()
						return nil, err
					}
					if err := rec.Run(); err != nil {
						free()
						return nil, err
					}
					c.Bytes = 8 * float64(n*V)
					c.Record = func(r *gpu.Recorder) error { return CrossEntropyBackward(r, g, Mem{}, s, x, l, n, V, false) }
				default:
					c.Bytes = 8 * float64(n*V)
					c.Record = func(r *gpu.Recorder) error { return CrossEntropyFused(r, loss, g, Mem{}, s, x, l, n, V, false) }
				}
				return c, nil
			}})
	}
}

// CrossEntropyRowLosses is the part of a scratch array filled by
// CrossEntropy that holds each row's loss, logsumexp(row) − row[label]
// (0 for ignored rows): n elements.
func CrossEntropyRowLosses(scratch Mem, n int64) Mem { return scratch.At(n) }
