package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/half"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

func TestMain(m *testing.M) { gputest.Main(m) }

// Test helpers shared by the kernel tests.

// tolFP32 is the normalized-MSE bound for fp32 kernels against float64.
const tolFP32 = 1e-10

// tolScaled bounds each element's error relative to the tensor's scale
// (reftest.CheckScaled) for fp32 kernels: a few ulps of fp32 (1.2e-7), so
// that a GPU's approximate exp and division pass where a wrong result
// does not.
const tolScaled = 2e-6

func newRNG(seed uint64) *rand.Rand { return reftest.NewRNG(seed, 0x5eed) }

// upload copies v (rounded to float32) into a new buffer with pad spare
// elements before it, so views at odd offsets are exercised.
func upload(t testing.TB, d *gpu.Device, v []float64, pad int64) Mem {
	t.Helper()
	n := int64(len(v))
	if n == 0 {
		n = 1
	}
	b, err := d.Alloc(4 * (n + pad))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	if err := gpu.WriteSlice(b, pad, f); err != nil {
		t.Fatal(err)
	}
	return Mem{Buf: b, Off: pad}
}

// upload16 stores v rounded to the 16-bit type typ (ElemF16 or ElemBF16),
// with pad spare elements before it, and returns the view and the rounded
// values (what the float64 references compute with).
func upload16(t testing.TB, d *gpu.Device, v []float64, pad int64, typ ElemType) (Mem, []float64) {
	t.Helper()
	n := int64(len(v))
	if n == 0 {
		n = 1
	}
	b, err := d.Alloc(2 * (n + pad))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	h := make([]uint16, len(v))
	rounded := make([]float64, len(v))
	for i, x := range v {
		if typ == ElemBF16 {
			h[i] = half.BF16(float32(x))
			rounded[i] = float64(half.BF16ToFloat32(h[i]))
		} else {
			h[i] = half.F16(float32(x))
			rounded[i] = float64(half.F16ToFloat32(h[i]))
		}
		if r := typ.Round(x); r != rounded[i] {
			t.Fatalf("%v.Round(%v) = %v, the stored value is %v", typ, x, r, rounded[i])
		}
	}
	if err := gpu.WriteSlice(b, pad, h); err != nil {
		t.Fatal(err)
	}
	return Mem{Buf: b, Off: pad, Type: typ}, rounded
}

// types16 are the 16-bit element types.
var types16 = []ElemType{ElemF16, ElemBF16}

// zeros allocates n zeroed elements with pad spare elements before them.
func zeros(t testing.TB, d *gpu.Device, n int, pad int64) Mem {
	t.Helper()
	return upload(t, d, make([]float64, n), pad)
}

// download reads n float32 elements of m as float64.
func download(t testing.TB, m Mem, n int) []float64 {
	t.Helper()
	f := make([]float32, n)
	if err := gpu.ReadSlice(m.Buf, m.Off, f); err != nil {
		t.Fatal(err)
	}
	out := make([]float64, n)
	for i, x := range f {
		out[i] = float64(x)
	}
	return out
}

// run submits r and waits, failing the test on error.
func run(t testing.TB, r *gpu.Recorder) {
	t.Helper()
	if err := r.Run(); err != nil {
		t.Fatal(err)
	}
}

// awkward are the sizes every kernel is tested on: not multiples of any
// workgroup or tile size.
var awkward = []int{1, 7, 33, 129, 1000}
