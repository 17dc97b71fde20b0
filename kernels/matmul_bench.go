package kernels

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/internal/half"
)

// Benchmark shapes of MatMul: "MxNxK" (C is M×N, the inner dimension K),
// optionally followed by "/nt", "/tn" or "/tt" (A and/or B stored
// transposed), "/bZ" (Z products batched, contiguous) and "/f16" or
// "/bf16" (B stored in 16 bits, as frozen weights can be). T5-large's
// projections are X·Wᵀ with W stored (out, in) as in HF Linear: /nt.
var matmulBenchShapes = []string{
	"1024x1024x1024",
	"2048x2048x2048",
	"3248x1024x1024/nt",  // q, k, v, o projections: 8 × 406 tokens, d_model 1024
	"3248x4096x1024/nt",  // wi (relu feed-forward, d_ff 4096)
	"3248x1024x4096/nt",  // wo
	"3248x2816x1024/nt",  // wi_0, wi_1 (gated-gelu, d_ff 2816)
	"406x406x64/nt/b128", // attention scores Q·Kᵀ, 8 × 16 heads
	"406x64x406/b128",    // attention output P·V
	"40x32128x1024/nt",   // tied LM head, decoder 8 × 5 tokens
}

// parseMatMulShape parses a benchmark shape into MatMul parameters and the
// storage type of B.
func parseMatMulShape(shape string) (MatMulParams, ElemType, error) {
	parts := strings.Split(shape, "/")
	dims, err := ParseShape(parts[0], 3)
	if err != nil {
		return MatMulParams{}, 0, err
	}
	p := MatMulParams{M: dims[0], N: dims[1], K: dims[2], Batch: 1, Alpha: 1}
	bType := Elem32
	for _, f := range parts[1:] {
		switch {
		case f == "nn" || f == "nt" || f == "tn" || f == "tt":
			p.TransA, p.TransB = f[0] == 't', f[1] == 't'
		case f == "f16":
			bType = ElemF16
		case f == "bf16":
			bType = ElemBF16
		case strings.HasPrefix(f, "b"):
			z, err := strconv.Atoi(f[1:])
			if err != nil || z < 1 {
				return MatMulParams{}, 0, fmt.Errorf("shape %q: bad batch %q", shape, f)
			}
			p.Batch = z
		default:
			return MatMulParams{}, 0, fmt.Errorf("shape %q: unknown option %q (want nn, nt, tn, tt, bN, f16 or bf16)", shape, f)
		}
	}
	p.StrideA, p.StrideB, p.StrideC = int64(p.M)*int64(p.K), int64(p.K)*int64(p.N), int64(p.M)*int64(p.N)
	return p, bType, nil
}

func matmulBench(d *gpu.Device, shape string) (*BenchCase, error) {
	p, bType, err := parseMatMulShape(shape)
	if err != nil {
		return nil, err
	}
	z := int64(p.Batch)
	bufs, free, err := benchBuffers(d, z*p.StrideA, z*p.StrideB, z*p.StrideC)
	if err != nil {
		return nil, err
	}
	a, b, c := Whole(bufs[0]), Whole(bufs[1]), Whole(bufs[2])
	if bType.Is16() {
		// The same values, rounded to 16 bits, in the first half of B's
		// buffer.
		v := make([]float32, z*p.StrideB)
		h := make([]uint16, len(v))
		err := gpu.ReadSlice(bufs[1], 0, v)
		for i, x := range v {
			h[i] = half.F16(x)
			if bType == ElemBF16 {
				h[i] = half.BF16(x)
			}
		}
		if err == nil {
			err = gpu.WriteSlice(bufs[1], 0, h)
		}
		if err != nil {
			free()
			return nil, err
		}
		b.Type = bType
	}
	return &BenchCase{Op: "matmul", Shape: shape, Free: free,
		Flops:  2 * float64(z) * float64(p.M) * float64(p.N) * float64(p.K),
		Bytes:  float64(4*z*(p.StrideA+p.StrideC) + bType.Size()*z*p.StrideB),
		Record: func(r *gpu.Recorder) error { return MatMul(r, c, a, b, p, Mem{}) }}, nil
}

func init() {
	registerBench(BenchOp{Name: "matmul", Shapes: matmulBenchShapes, Make: matmulBench})
}
