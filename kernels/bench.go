package kernels

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// Benchmarks: each op family registers a BenchOp that builds a benchmark case
// from a shape string ("1024x1024x1024", "8x406x1024", ...). `shlpt-vk bench`
// and the Go benchmarks run the same cases.

// BenchCase is one op at one shape, ready to run.
type BenchCase struct {
	Op, Shape string
	// Flops per run (0 for memory-bound ops) and Bytes read plus written per run.
	Flops, Bytes float64
	// Record records one run.
	Record func(r *gpu.Recorder) error
	// Free releases the case's device memory.
	Free func()
}

// BenchOp makes benchmark cases for one op.
type BenchOp struct {
	Name string
	// Shapes are the default shapes (including T5-large's where they apply).
	Shapes []string
	// Make allocates operands for shape, filled with small random values.
	Make func(d *gpu.Device, shape string) (*BenchCase, error)
}

var (
	benchMu  sync.Mutex
	benchOps = map[string]BenchOp{}
)

func registerBench(op BenchOp) {
	benchMu.Lock()
	defer benchMu.Unlock()
	benchOps[op.Name] = op
}

// BenchOps lists the registered ops by name.
func BenchOps() []BenchOp {
	benchMu.Lock()
	defer benchMu.Unlock()
	out := make([]BenchOp, 0, len(benchOps))
	for _, op := range benchOps {
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupBench returns the op named name.
func LookupBench(name string) (BenchOp, error) {
	benchMu.Lock()
	defer benchMu.Unlock()
	op, ok := benchOps[name]
	if !ok {
		names := make([]string, 0, len(benchOps))
		for n := range benchOps {
			names = append(names, n)
		}
		sort.Strings(names)
		return BenchOp{}, fmt.Errorf("unknown op %q (ops: %s)", name, strings.Join(names, ", "))
	}
	return op, nil
}

// BenchResult is the outcome of running a case.
type BenchResult struct {
	Op       string  `json:"op"`
	Shape    string  `json:"shape"`
	Runs     int     `json:"runs"`
	MedianUS float64 `json:"median_us"`
	GFLOPS   float64 `json:"gflops,omitempty"`
	GBPS     float64 `json:"gbps,omitempty"`
	// PctCopy is GBPS as a percentage of the device's measured copy bandwidth.
	PctCopy float64 `json:"pct_copy_bw,omitempty"`
	// Timer says how time was measured: "timestamps" or "wall".
	Timer string `json:"timer"`
}

// RunBench runs c reps times after one warm-up run and reports the median.
// Each run is its own submission; with timestamp support the time is the
// device time of the run's dispatches, otherwise wall time around
// submit-and-wait. copyBW (bytes/s, 0 if unknown) turns GB/s into a
// percentage.
func RunBench(d *gpu.Device, c *BenchCase, reps int, copyBW float64) (BenchResult, error) {
	if reps < 1 {
		reps = 1
	}
	profile := d.Info().TimestampValidBits > 0
	times := make([]float64, 0, reps)
	for i := -1; i < reps; i++ {
		r := d.NewRecorder(profile)
		if err := c.Record(r); err != nil {
			return BenchResult{}, fmt.Errorf("%s %s: %w", c.Op, c.Shape, err)
		}
		start := time.Now()
		if err := r.Run(); err != nil {
			return BenchResult{}, fmt.Errorf("%s %s: %w", c.Op, c.Shape, err)
		}
		wall := time.Since(start)
		if i < 0 {
			continue // warm-up: pipeline creation, first touch of memory
		}
		if profile {
			var sum time.Duration
			for _, t := range r.Timings() {
				sum += t.Time
			}
			times = append(times, float64(sum)/1e3)
		} else {
			times = append(times, float64(wall)/1e3)
		}
	}
	sort.Float64s(times)
	med := times[len(times)/2]
	if len(times)%2 == 0 {
		med = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	res := BenchResult{Op: c.Op, Shape: c.Shape, Runs: reps, MedianUS: med, Timer: "wall"}
	if profile {
		res.Timer = "timestamps"
	}
	if med > 0 {
		if c.Flops > 0 {
			res.GFLOPS = c.Flops / (med * 1e3)
		}
		if c.Bytes > 0 {
			res.GBPS = c.Bytes / (med * 1e3)
			if copyBW > 0 {
				res.PctCopy = 100 * res.GBPS * 1e9 / copyBW
			}
		}
	}
	return res, nil
}

// ParseShape parses "AxBxC" into positive integers, checking the count.
func ParseShape(s string, n int) ([]int, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "x")
	if len(parts) != n {
		return nil, fmt.Errorf("shape %q: want %d dimensions separated by x", s, n)
	}
	out := make([]int, n)
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("shape %q: dimension %q is not a positive integer", s, p)
		}
		out[i] = v
	}
	return out, nil
}

// benchBuffers allocates float32 buffers of the given element counts filled
// with small pseudo-random values (deterministic), for benchmark operands.
func benchBuffers(d *gpu.Device, sizes ...int64) ([]*gpu.Buffer, func(), error) {
	var bufs []*gpu.Buffer
	free := func() {
		for _, b := range bufs {
			b.Free()
		}
	}
	for i, n := range sizes {
		b, err := d.Alloc(4 * n)
		if err != nil {
			free()
			return nil, nil, err
		}
		bufs = append(bufs, b)
		v := make([]float32, n)
		s := uint32(2463534242 + i)
		for j := range v {
			s ^= s << 13
			s ^= s >> 17
			s ^= s << 5
			v[j] = (float32(s%2001) - 1000) / 4000
		}
		if err := gpu.WriteSlice(b, 0, v); err != nil {
			free()
			return nil, nil, err
		}
	}
	return bufs, free, nil
}

// CopyBandwidth measures the bytes per second (read plus written) that the
// copy shader moves over a buffer of the given size: the reference for
// memory-bound kernels. It is the median of reps runs.
func CopyBandwidth(d *gpu.Device, bytes int64, reps int) (float64, error) {
	n := bytes / 4
	c, err := copyBench(d, n)
	if err != nil {
		return 0, err
	}
	defer c.Free()
	res, err := RunBench(d, c, reps, 0)
	if err != nil {
		return 0, err
	}
	if res.MedianUS <= 0 {
		return 0, fmt.Errorf("copy bandwidth: run took no measurable time")
	}
	return c.Bytes / (res.MedianUS * 1e-6), nil
}

func copyBench(d *gpu.Device, n int64) (*BenchCase, error) {
	bufs, free, err := benchBuffers(d, n, n)
	if err != nil {
		return nil, err
	}
	x, y := Whole(bufs[0]), Whole(bufs[1])
	return &BenchCase{Op: "copy", Shape: strconv.FormatInt(n, 10), Bytes: 8 * float64(n),
		Record: func(r *gpu.Recorder) error { return Copy(r, y, x, n) }, Free: free}, nil
}

func oneDim(shape string) (int64, error) {
	v, err := ParseShape(shape, 1)
	if err != nil {
		return 0, err
	}
	return int64(v[0]), nil
}

// T5-large activation size: batch 8 × (150 prompt + 256 input) tokens × 1024.
const t5LargeActivations = "3325952"

func init() {
	registerBench(BenchOp{Name: "copy", Shapes: []string{"16777216", t5LargeActivations},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			n, err := oneDim(shape)
			if err != nil {
				return nil, err
			}
			return copyBench(d, n)
		}})
	registerBench(BenchOp{Name: "fill", Shapes: []string{"16777216"},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			n, err := oneDim(shape)
			if err != nil {
				return nil, err
			}
			bufs, free, err := benchBuffers(d, n)
			if err != nil {
				return nil, err
			}
			y := Whole(bufs[0])
			return &BenchCase{Op: "fill", Shape: shape, Bytes: 4 * float64(n),
				Record: func(r *gpu.Recorder) error { return Fill(r, y, n, 1) }, Free: free}, nil
		}})
	registerBench(BenchOp{Name: "axpy", Shapes: []string{"16777216", t5LargeActivations},
		Make: func(d *gpu.Device, shape string) (*BenchCase, error) {
			n, err := oneDim(shape)
			if err != nil {
				return nil, err
			}
			bufs, free, err := benchBuffers(d, n, n)
			if err != nil {
				return nil, err
			}
			x, y := Whole(bufs[0]), Whole(bufs[1])
			return &BenchCase{Op: "axpy", Shape: shape, Bytes: 12 * float64(n), Flops: 2 * float64(n),
				Record: func(r *gpu.Recorder) error { return Axpy(r, y, 1e-3, x, n) }, Free: free}, nil
		}})
}

// Summary is GFLOP/s for compute-bound and GB/s for memory-bound results.
func (r BenchResult) Summary() string {
	if r.GFLOPS > 0 && (r.GBPS == 0 || r.GFLOPS/math.Max(r.GBPS, 1e-9) >= 4) {
		return fmt.Sprintf("%.1f GFLOP/s", r.GFLOPS)
	}
	if r.PctCopy > 0 {
		return fmt.Sprintf("%.1f GB/s (%.0f%% of copy)", r.GBPS, r.PctCopy)
	}
	return fmt.Sprintf("%.1f GB/s", r.GBPS)
}
