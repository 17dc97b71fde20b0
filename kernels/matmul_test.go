package kernels

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// mmCase is one matmul test: the parameters, spare elements before each
// operand (odd offsets) and whether a bias is added.
type mmCase struct {
	p                MatMulParams
	padA, padB, padC int64
	bias             bool
	bType            ElemType // B's storage: 32-bit, or 16-bit floats
}

func (c mmCase) String() string {
	s := fmt.Sprintf("%dx%dx%d", c.p.M, c.p.N, c.p.K)
	if c.p.TransA {
		s += "/At"
	}
	if c.p.TransB {
		s += "/Bt"
	}
	if c.p.Batch > 1 {
		s += fmt.Sprintf("/batch%d", c.p.Batch)
	}
	if c.p.LDA != 0 || c.p.LDB != 0 || c.p.LDC != 0 {
		s += fmt.Sprintf("/ld%d,%d,%d", c.p.LDA, c.p.LDB, c.p.LDC)
	}
	if c.padA != 0 || c.padB != 0 || c.padC != 0 {
		s += fmt.Sprintf("/pad%d,%d,%d", c.padA, c.padB, c.padC)
	}
	if c.p.Beta != 0 {
		s += fmt.Sprintf("/beta%g", c.p.Beta)
	}
	if c.bias {
		s += "/bias"
	}
	if c.bType != Elem32 {
		s += "/b" + c.bType.String()
	}
	return s
}

// mmGuard is the number of elements after C checked to stay untouched.
const mmGuard = 9

// mmVariant is an implementation under test: a variant with its tile table,
// or with one fixed tile shape.
type mmVariant struct {
	name  string
	v     matmulVariant
	texel *mmTexelCfg
	tiled *mmTiledCfg
}

// mmTestVariants are both variants with small tiles: the same shader code
// (edges, masks, transposes) as the production tiles, in a fraction of the
// compile time. TestMatMulTables runs the production tile tables.
func mmTestVariants(d *gpu.Device) []mmVariant {
	texel := mmTexelConfig(d, &MatMulParams{M: 1000}, true, true, true)
	// The smallest tile the lane count allows: with A shared through
	// shuffles, each of lanes/kb4 lane groups fetches at least one row.
	texel.tn4, texel.kb4 = 1, 2
	texel.tm = max(texel.lanes/2, 1)
	if !texel.bcast {
		texel.tm = 4
	}
	tiled := mmTiledCfg{wgX: 4, wgY: 8, tm: 2, tn: 3, bk: 4}
	return []mmVariant{{name: "texel", v: matmulTexel, texel: &texel}, {name: "tiled", v: matmulTiled, tiled: &tiled}}
}

// runMatMulCase runs c on the device with variant v and compares the whole
// of C (gaps between rows and batches and a guard after it included) with
// the reference.
func runMatMulCase(t *testing.T, d *gpu.Device, rng *rand.Rand, v mmVariant, c mmCase) {
	t.Helper()
	matmulTexelOverride, matmulTiledOverride = v.texel, v.tiled
	defer func() { matmulTexelOverride, matmulTiledOverride = nil, nil }()
	pr := &mmProblem{p: c.p}
	norm, err := matmulNormalize(c.p)
	if err != nil {
		t.Fatal(err)
	}
	pr.p = norm
	ea, eb, ec := pr.extents()
	a := reftest.Randn(rng, int(ea), 1)
	b := reftest.Randn(rng, int(eb), 1)
	cv := reftest.Randn(rng, int(ec)+mmGuard, 1)
	var bias []float64
	am, bm, cm := upload(t, d, a, c.padA), upload(t, d, b, c.padB), upload(t, d, cv, c.padC)
	if c.bType.Is16() {
		// The reference multiplies by the rounded values the device holds.
		bm, b = upload16(t, d, b, c.padB, c.bType)
	}
	var biasM Mem
	if c.bias {
		bias = reftest.Randn(rng, c.p.N, 1)
		biasM = upload(t, d, bias, 1)
	}
	r := d.NewRecorder(false)
	if err := matmul(r, cm, am, bm, c.p, biasM, v.v); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	want := append([]float64(nil), cv...)
	for i := range want {
		want[i] = float64(float32(want[i]))
	}
	MatMulRef(want, a, b, c.p, bias)
	reftest.CheckNMSE(t, "c", download(t, cm, len(want)), want, tolFP32)
}

// mmShapes are the M×N×K combinations: every awkward size in every
// dimension, with small partners, and a few larger products.
func mmShapes() [][3]int {
	var out [][3]int
	for _, s := range awkward {
		out = append(out, [3]int{s, 7, 33}, [3]int{33, s, 7}, [3]int{7, 33, s})
	}
	return append(out, [3]int{129, 129, 129}, [3]int{100, 96, 64}, [3]int{130, 200, 67}, [3]int{64, 1000, 5})
}

func TestMatMul(t *testing.T) {
	d := gputest.Device(t)
	for _, v := range mmTestVariants(d) {
		rng := newRNG(3)
		for _, s := range mmShapes() {
			for _, tr := range []int{0, 1, 2, 3} {
				c := mmCase{p: MatMulParams{M: s[0], N: s[1], K: s[2], TransA: tr&1 != 0, TransB: tr&2 != 0, Alpha: 1}}
				t.Run(v.name+"/"+c.String(), func(t *testing.T) { runMatMulCase(t, d, rng, v, c) })
			}
		}
	}
}

// Every option on a few shapes: leading dimensions above the minimum, odd
// offsets, alpha and beta, the bias, batches with strides (and operands
// shared by all batches), empty K.
func TestMatMulOptions(t *testing.T) {
	d := gputest.Device(t)
	base := []MatMulParams{
		{M: 33, N: 129, K: 7, Alpha: 1},
		{M: 130, N: 70, K: 67, Alpha: 1},
		{M: 5, N: 64, K: 1000, Alpha: 1},
	}
	var cases []mmCase
	for _, b := range base {
		for tr := 0; tr < 4; tr++ {
			p := b
			p.TransA, p.TransB = tr&1 != 0, tr&2 != 0
			_, ac := p.aDims()
			_, bc := p.bDims()
			cases = append(cases,
				mmCase{p: p, bias: true},
				mmCase{p: mmWith(p, func(q *MatMulParams) { q.Alpha, q.Beta = -0.5, 0.75 }), padA: 3, padB: 1, padC: 2},
				mmCase{p: mmWith(p, func(q *MatMulParams) { q.LDA, q.LDB, q.LDC = ac+4, bc+8, p.N+4 }), bias: true},
				mmCase{p: mmWith(p, func(q *MatMulParams) { q.LDA, q.LDB, q.LDC, q.Beta = ac+3, bc+1, p.N+5, 1 }), padA: 4, padB: 8, padC: 1},
			)
		}
	}
	// Batched: attention-like products, (B·H) batches of (T×D)·(D×T)ᵀ and
	// (T×T)·(T×D), with and without gaps between batches, and operands
	// shared by every batch (stride 0).
	att := func(m, n, k, batch int, ta, tb bool, sa, sb int64, beta float32, bias bool) mmCase {
		p := MatMulParams{M: m, N: n, K: k, TransA: ta, TransB: tb, Batch: batch, Alpha: 0.125, Beta: beta}
		ar, ac := p.aDims()
		br, bc := p.bDims()
		if sa < 0 {
			sa = int64(ar * ac)
		}
		if sb < 0 {
			sb = int64(br * bc)
		}
		p.StrideA, p.StrideB, p.StrideC = sa, sb, int64(m*n)+3
		return mmCase{p: p, bias: bias, padA: 1, padB: 2, padC: 3}
	}
	cases = append(cases,
		att(33, 33, 16, 6, false, true, -1, -1, 0, false),
		att(7, 33, 16, 5, false, true, 7*16+4, 33*16+1, 0, false),
		att(33, 16, 33, 6, false, false, -1, -1, 1, false),
		att(16, 33, 33, 3, true, false, -1, -1, 0, true),
		att(33, 16, 33, 4, true, true, -1, 0, 0.5, true),
		att(9, 16, 12, 4, false, false, 0, -1, 0, false),
		mmCase{p: MatMulParams{M: 7, N: 33, K: 0, Alpha: 1, Beta: 0.5}, bias: true},
		mmCase{p: MatMulParams{M: 7, N: 33, K: 0, Alpha: 1}},
		mmCase{p: MatMulParams{M: 1, N: 1, K: 1, Alpha: 2}},
	)
	for _, v := range mmTestVariants(d) {
		rng := newRNG(4)
		for _, c := range cases {
			t.Run(v.name+"/"+c.String(), func(t *testing.T) { runMatMulCase(t, d, rng, v, c) })
		}
	}
}

func mmWith(p MatMulParams, f func(*MatMulParams)) MatMulParams {
	f(&p)
	return p
}

// The production tile tables: every shape of both tables on a product that
// covers partial tiles at all edges, with each transposition, through
// RGBA32F texels and (odd offsets) float texels.
func TestMatMulTables(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(5)
	// The largest tiles take seconds to compile on lavapipe; they are run
	// with two of the four transpositions, which cover all code paths.
	type entry struct {
		v     mmVariant
		trans []int
	}
	var entries []entry
	for i, m := range []int{1000, 40, 5} {
		cfg := mmTexelConfig(d, &MatMulParams{M: m}, true, true, true)
		trans := [][]int{{0, 3}, {1, 2}, {0, 1, 2, 3}}[i]
		entries = append(entries, entry{mmVariant{name: fmt.Sprintf("texel-tm%d", cfg.tm), v: matmulTexel, texel: &cfg}, trans})
	}
	// Float texels: the table entry is chosen per case.
	entries = append(entries, entry{mmVariant{name: "texel-float", v: matmulTexel}, []int{0, 1, 2, 3}})
	for i, e := range mmTiledTable {
		cfg := e.cfg
		trans := [][]int{{0, 3}, {1, 2}, {0, 1, 2, 3}}[min(i, 2)]
		entries = append(entries, entry{mmVariant{name: fmt.Sprintf("tiled-%dx%d", cfg.bm(), cfg.bn()), v: matmulTiled, tiled: &cfg}, trans})
	}
	for _, e := range entries {
		v := e.v
		for _, tr := range e.trans {
			// Sizes that are multiples of 4 (RGBA32F texels) but not of the tiles.
			c := mmCase{p: MatMulParams{M: 132, N: 140, K: 76, TransA: tr&1 != 0, TransB: tr&2 != 0, Alpha: 1, Beta: 0.5}, bias: true}
			if v.name == "texel-float" {
				c.padA, c.padB = 1, 2 // odd offsets: float texels
			}
			t.Run(v.name+"/"+c.String(), func(t *testing.T) { runMatMulCase(t, d, rng, v, c) })
		}
	}
}

// mmGradCases are forward products whose gradients are checked: every
// transposition, a batch with strides, and batches sharing A or B.
func mmGradCases() []MatMulParams {
	var out []MatMulParams
	for tr := 0; tr < 4; tr++ {
		out = append(out, MatMulParams{M: 5, N: 7, K: 3, TransA: tr&1 != 0, TransB: tr&2 != 0, Alpha: 0.7, Beta: 0.5})
	}
	return append(out,
		MatMulParams{M: 4, N: 3, K: 5, TransB: true, Batch: 3, StrideA: 22, StrideB: 15, StrideC: 13, Alpha: 1},
		MatMulParams{M: 4, N: 3, K: 5, TransA: true, Batch: 3, StrideA: 0, StrideB: 16, StrideC: 12, Alpha: 1},
		MatMulParams{M: 4, N: 3, K: 5, Batch: 2, StrideA: 25, StrideB: 0, StrideC: 14, Alpha: -1, LDA: 6},
	)
}

// The references' gradients against central finite differences of
// L = Σ G ⊙ MatMulRef(A, B).
func TestMatMulRefGrad(t *testing.T) {
	rng := newRNG(6)
	for _, p := range mmGradCases() {
		t.Run(mmCase{p: p}.String(), func(t *testing.T) {
			pr := &mmProblem{}
			var err error
			if pr.p, err = matmulNormalize(p); err != nil {
				t.Fatal(err)
			}
			ea, eb, ec := pr.extents()
			a, b := reftest.Randn(rng, int(ea), 1), reftest.Randn(rng, int(eb), 1)
			c0, g, bias := reftest.Randn(rng, int(ec), 1), reftest.Randn(rng, int(ec), 1), reftest.Randn(rng, p.N, 1)
			loss := func(a, b []float64) float64 {
				c := append([]float64(nil), c0...)
				MatMulRef(c, a, b, p, bias)
				return reftest.Dot(c, g)
			}
			wantA := reftest.NumGrad(func(x []float64) float64 { return loss(x, b) }, a, 1e-5)
			wantB := reftest.NumGrad(func(x []float64) float64 { return loss(a, x) }, b, 1e-5)
			gotA, gotB := make([]float64, ea), make([]float64, eb)
			MatMulGradARef(gotA, g, b, p, false)
			MatMulGradBRef(gotB, a, g, p, false)
			reftest.CheckNMSE(t, "dA", gotA, wantA, 1e-16)
			reftest.CheckNMSE(t, "dB", gotB, wantB, 1e-16)
			// accumulate adds to what is there.
			acc := reftest.Randn(rng, int(ea), 1)
			want := append([]float64(nil), acc...)
			for i := range want {
				want[i] += wantA[i]
			}
			MatMulGradARef(acc, g, b, p, true)
			reftest.CheckNMSE(t, "dA accumulated", acc, want, 1e-16)
		})
	}
}

// The gradients through MatMulGradA and MatMulGradB on the device against
// the references, overwriting and accumulating.
func TestMatMulBackward(t *testing.T) {
	d := gputest.Device(t)
	cases := mmGradCases()
	// Larger, awkward products as the model has them: X·Wᵀ + b (HF Linear)
	// and attention's batched Q·Kᵀ and P·V.
	cases = append(cases,
		MatMulParams{M: 129, N: 33, K: 1000, TransB: true, Alpha: 1},
		MatMulParams{M: 1000, N: 7, K: 33, Alpha: 1},
		MatMulParams{M: 33, N: 33, K: 16, TransB: true, Batch: 4, StrideA: 33 * 16, StrideB: 33 * 16, StrideC: 33 * 33, Alpha: 0.25},
		MatMulParams{M: 33, N: 16, K: 33, Batch: 4, StrideA: 33 * 33, StrideB: 33 * 16, StrideC: 33 * 16, Alpha: 1},
	)
	for _, v := range mmTestVariants(d) {
		rng := newRNG(7)
		for _, p := range cases {
			for _, accumulate := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%v/accumulate=%v", v.name, mmCase{p: p}, accumulate), func(t *testing.T) {
					matmulTexelOverride, matmulTiledOverride = v.texel, v.tiled
					defer func() { matmulTexelOverride, matmulTiledOverride = nil, nil }()
					if v.v == matmulTiled {
						t.Setenv("SHLPT_VK_MATMUL", "tiled")
					} else {
						t.Setenv("SHLPT_VK_MATMUL", "texel")
					}
					pr := &mmProblem{}
					var err error
					if pr.p, err = matmulNormalize(p); err != nil {
						t.Fatal(err)
					}
					ea, eb, ec := pr.extents()
					a, b, g := reftest.Randn(rng, int(ea), 1), reftest.Randn(rng, int(eb), 1), reftest.Randn(rng, int(ec), 1)
					da0, db0 := reftest.Randn(rng, int(ea), 1), reftest.Randn(rng, int(eb), 1)
					am, bm, gm := upload(t, d, a, 1), upload(t, d, b, 2), upload(t, d, g, 3)
					dam, dbm := upload(t, d, da0, 0), upload(t, d, db0, 5)
					r := d.NewRecorder(false)
					if err := MatMulGradA(r, dam, gm, bm, p, accumulate); err != nil {
						t.Fatal(err)
					}
					if err := MatMulGradB(r, dbm, am, gm, p, accumulate); err != nil {
						t.Fatal(err)
					}
					run(t, r)
					wantA, wantB := tlF32(da0), tlF32(db0)
					MatMulGradARef(wantA, tlF32(g), tlF32(b), p, accumulate)
					MatMulGradBRef(wantB, tlF32(a), tlF32(g), p, accumulate)
					reftest.CheckNMSE(t, "dA", download(t, dam, len(wantA)), wantA, tolFP32)
					reftest.CheckNMSE(t, "dB", download(t, dbm, len(wantB)), wantB, tolFP32)
				})
			}
		}
	}
}

// Operands larger than one storage binding: B (N×K, as the tied LM head)
// just over maxStorageBufferRange, C just over it, and rows of C longer than
// the grid allows in one dispatch. The product is split into pieces. The
// binding limit is lowered to 1 MiB, so that this runs on every device. To
// keep the host's work small, the operands are filled with a cheap pattern
// and a sample of C is checked: all of its rows, every 61st column and the
// first and last 130.
func TestMatMulAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 1<<20)
	lim := maxElems(d)
	const k = 1024
	type limitCase struct {
		p     MatMulParams
		split bool // must be recorded as several dispatches
	}
	cases := []limitCase{
		{MatMulParams{M: 3, N: int(lim/k) + 2, K: k, TransB: true, Alpha: 1}, false},
		{MatMulParams{M: 2052, N: int(lim/2052) + 4, K: 1, Alpha: 1}, true},
		{MatMulParams{M: 1, N: 65536*64 + 5, K: 1, Alpha: 1}, true},
	}
	// The texel variant with its production tiles; the tiled one with one
	// subgroup per workgroup, as lavapipe runs large workgroups slowly.
	variants := mmTestVariants(d)
	variants[0].texel = nil
	variants[1].tiled = &mmTiledCfg{wgX: 8, wgY: 1, tm: 8, tn: 8, bk: 8}
	pattern := func(n int64, seed int64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32((int64(i)*7919+seed*104729)%2001-1000) / 1000
		}
		return v
	}
	for _, v := range variants {
		for i, c := range cases {
			if i == 2 && v.v == matmulTiled {
				continue // the grid limit is split as for the texel variant
			}
			// B fits one RGBA32F texel view but not one storage binding.
			split := c.split || i == 0 && v.v == matmulTiled
			t.Run(v.name+"/"+mmCase{p: c.p}.String(), func(t *testing.T) {
				matmulTexelOverride, matmulTiledOverride = v.texel, v.tiled
				defer func() { matmulTexelOverride, matmulTiledOverride = nil, nil }()
				p := c.p
				pr := &mmProblem{}
				var err error
				if pr.p, err = matmulNormalize(p); err != nil {
					t.Fatal(err)
				}
				ea, eb, ec := pr.extents()
				a, b := pattern(ea, 1), pattern(eb, 2)
				mem := func(v []float32, n int64) Mem {
					buf, err := d.Alloc(4 * n)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(buf.Free)
					if v != nil {
						if err := gpu.WriteSlice(buf, 0, v); err != nil {
							t.Fatal(err)
						}
					}
					return Whole(buf)
				}
				am, bm, cm := mem(a, ea), mem(b, eb), mem(nil, ec)
				bias := pattern(int64(p.N), 3)
				biasM := mem(bias, int64(p.N))
				r := d.NewRecorder(false)
				if err := matmul(r, cm, am, bm, p, biasM, v.v); err != nil {
					t.Fatal(err)
				}
				if split && r.Dispatches() < 2 {
					t.Fatalf("recorded as %d dispatch", r.Dispatches())
				}
				run(t, r)
				got := make([]float32, ec)
				if err := gpu.ReadSlice(cm.Buf, 0, got); err != nil {
					t.Fatal(err)
				}
				var sampleGot, sampleWant []float64
				for n := 0; n < p.N; n++ {
					if n%61 != 0 && n >= 130 && n < p.N-130 {
						continue
					}
					for m := 0; m < p.M; m++ {
						s := float64(bias[n])
						for kk := 0; kk < p.K; kk++ {
							bv := b[kk*p.N+n]
							if p.TransB {
								bv = b[n*p.K+kk]
							}
							s += float64(a[m*p.K+kk]) * float64(bv)
						}
						sampleGot = append(sampleGot, float64(got[m*p.N+n]))
						sampleWant = append(sampleWant, s)
					}
				}
				reftest.CheckNMSE(t, "c (sampled)", sampleGot, sampleWant, tolFP32)
			})
		}
	}
}

// Bad operands are errors naming the op and the shapes, recorded nothing.
func TestMatMulErrors(t *testing.T) {
	d := gputest.Device(t)
	a, b, c := zeros(t, d, 100, 0), zeros(t, d, 100, 0), zeros(t, d, 100, 0)
	freed, err := d.Alloc(400)
	if err != nil {
		t.Fatal(err)
	}
	freed.Free()
	p := MatMulParams{M: 5, N: 4, K: 6, Alpha: 1}
	cases := []struct {
		name    string
		c, a, b Mem
		p       MatMulParams
		bias    Mem
		want    string
	}{
		{"negative", c, a, b, mmWith(p, func(q *MatMulParams) { q.M = -1 }), Mem{}, "negative size"},
		{"lda", c, a, b, mmWith(p, func(q *MatMulParams) { q.LDA = 5 }), Mem{}, "LDA 5 is less than the row length 6"},
		{"ldb transposed", c, a, b, mmWith(p, func(q *MatMulParams) { q.TransB, q.LDB = true, 4 }), Mem{}, "LDB 4 is less than the row length 6"},
		{"a too small", c, a.At(80), b, p, Mem{}, "a (5x6, lda 6) needs 30 elements at offset 80 but its buffer holds 100"},
		{"batched b too small", c, a, b, mmWith(p, func(q *MatMulParams) { q.Batch, q.StrideB, q.StrideC = 3, 40, 20 }), Mem{}, "b (6x4, ldb 4) needs 104 elements"},
		{"nil c", Mem{}, a, b, p, Mem{}, "c (5x4, ldc 4) is nil"},
		{"freed", c, Mem{Buf: freed}, b, p, Mem{}, "was freed"},
		{"c overlaps a", a.At(20), a, b, p, Mem{}, "c overlaps a"},
		{"batches of c overlap", c, a, b, mmWith(p, func(q *MatMulParams) { q.Batch, q.StrideC = 2, 19 }), Mem{}, "batches of c overlap"},
		{"batches of c shared", c, a, b, mmWith(p, func(q *MatMulParams) { q.Batch = 2 }), Mem{}, "batches of c overlap"},
		{"bias too short", c, a, b, p, b.At(97), "bias (4) needs 4 elements at offset 97"},
		{"c overlaps bias", c, a, b, p, c.At(2), "c overlaps the bias"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := d.NewRecorder(false)
			err := MatMul(r, tc.c, tc.a, tc.b, tc.p, tc.bias)
			if err == nil || !strings.Contains(err.Error(), "matmul: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one with %q", err, tc.want)
			}
			if r.Dispatches() != 0 {
				t.Fatalf("%d dispatches recorded", r.Dispatches())
			}
		})
	}
	r := d.NewRecorder(false)
	q := MatMulParams{M: 4, N: 3, K: 5, Batch: 2, StrideA: 10, StrideB: 15, StrideC: 12, Alpha: 1}
	if err := MatMulGradA(r, a, c, b, q, false); err == nil || !strings.Contains(err.Error(), "gradient of a: batches overlap") {
		t.Fatalf("gradient of overlapping batches of a: got %v", err)
	}
}

// A 16-bit B (float16 and bfloat16 weights): both variants on every
// awkward size in every dimension, each transposition, against the float64
// reference on the rounded B, within the fp32 tolerance (the device widens
// B exactly and accumulates in fp32). Odd offsets of B take the scalar
// texel path; leading dimensions, beta, the bias and batches sharing B are
// covered too.
func TestMatMulW16(t *testing.T) {
	d := gputest.Device(t)
	var cases []mmCase
	for _, s := range mmShapes() {
		for tr := 0; tr < 4; tr++ {
			cases = append(cases, mmCase{p: MatMulParams{M: s[0], N: s[1], K: s[2], TransA: tr&1 != 0, TransB: tr&2 != 0, Alpha: 1}})
		}
	}
	for tr := 0; tr < 4; tr++ {
		p := MatMulParams{M: 33, N: 129, K: 70, TransA: tr&1 != 0, TransB: tr&2 != 0, Alpha: 1}
		_, ac := p.aDims()
		_, bc := p.bDims()
		cases = append(cases,
			mmCase{p: p, padB: 3, bias: true},
			mmCase{p: mmWith(p, func(q *MatMulParams) { q.Alpha, q.Beta = -0.5, 0.75 }), padA: 1, padB: 1, padC: 2},
			mmCase{p: mmWith(p, func(q *MatMulParams) { q.LDA, q.LDB, q.LDC = ac+4, bc+8, p.N+4 }), padB: 4, bias: true},
			mmCase{p: mmWith(p, func(q *MatMulParams) { q.LDB, q.Beta = bc+1, 1 }), padB: 2},
		)
	}
	// x·Wᵀ with x (B, T, in) flattened and batches sharing W.
	cases = append(cases,
		mmCase{p: MatMulParams{M: 7, N: 33, K: 16, TransB: true, Batch: 3, StrideA: 7 * 16, StrideC: 7*33 + 1, Alpha: 1}, padB: 4},
		mmCase{p: MatMulParams{M: 9, N: 16, K: 12, Batch: 4, StrideA: 9*12 + 3, StrideC: 9 * 16, Alpha: 1}, padB: 1, bias: true},
	)
	for _, v := range mmTestVariants(d) {
		for _, typ := range types16 {
			rng := newRNG(11)
			for _, c := range cases {
				c.bType = typ
				t.Run(v.name+"/"+c.String(), func(t *testing.T) { runMatMulCase(t, d, rng, v, c) })
			}
		}
	}
}

// The production tiles with a 16-bit B: the largest texel tile and every
// tiled one, as the model's linear layers run them (B stored N×K) and as
// their input gradients do (K×N).
func TestMatMulW16Tables(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(12)
	cfg := mmTexelConfig(d, &MatMulParams{M: 1000}, true, true, true)
	variants := []mmVariant{{name: fmt.Sprintf("texel-tm%d", cfg.tm), v: matmulTexel, texel: &cfg}}
	for _, e := range mmTiledTable {
		cfg := e.cfg
		variants = append(variants, mmVariant{name: fmt.Sprintf("tiled-%dx%d", cfg.bm(), cfg.bn()), v: matmulTiled, tiled: &cfg})
	}
	for _, v := range variants {
		for i, typ := range types16 {
			c := mmCase{p: MatMulParams{M: 132, N: 140, K: 76, TransB: i == 0, Alpha: 1}, bias: true, bType: typ}
			t.Run(v.name+"/"+c.String(), func(t *testing.T) { runMatMulCase(t, d, rng, v, c) })
		}
	}
}

// The input gradient through a 16-bit B (dX = dY·W for x·Wᵀ, and dA for
// A·B) on both variants against the reference on the rounded B,
// overwriting and accumulating; B is never written. The gradient of a
// transposed A would read B as the left operand: an error.
func TestMatMulW16Backward(t *testing.T) {
	d := gputest.Device(t)
	cases := []MatMulParams{
		{M: 129, N: 33, K: 1000, TransB: true, Alpha: 1},
		{M: 1000, N: 7, K: 33, Alpha: 1},
		{M: 5, N: 7, K: 3, TransB: true, Alpha: 0.7, Beta: 0.5},
		{M: 4, N: 3, K: 5, Batch: 2, StrideA: 25, StrideB: 0, StrideC: 14, Alpha: -1, LDA: 6},
	}
	for _, v := range mmTestVariants(d) {
		for _, typ := range types16 {
			rng := newRNG(13)
			for _, p := range cases {
				for _, accumulate := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%v/b%v/accumulate=%v", v.name, mmCase{p: p}, typ, accumulate), func(t *testing.T) {
						matmulTexelOverride, matmulTiledOverride = v.texel, v.tiled
						defer func() { matmulTexelOverride, matmulTiledOverride = nil, nil }()
						t.Setenv("SHLPT_VK_MATMUL", v.v.String())
						pr := &mmProblem{}
						var err error
						if pr.p, err = matmulNormalize(p); err != nil {
							t.Fatal(err)
						}
						ea, eb, ec := pr.extents()
						g, da0 := reftest.Randn(rng, int(ec), 1), reftest.Randn(rng, int(ea), 1)
						bm, b := upload16(t, d, reftest.Randn(rng, int(eb), 1), 3, typ)
						gm, dam := upload(t, d, g, 1), upload(t, d, da0, 2)
						r := d.NewRecorder(false)
						if err := MatMulGradA(r, dam, gm, bm, p, accumulate); err != nil {
							t.Fatal(err)
						}
						run(t, r)
						want := tlF32(da0)
						MatMulGradARef(want, tlF32(g), b, p, accumulate)
						reftest.CheckNMSE(t, "dA", download(t, dam, len(want)), want, tolFP32)
					})
				}
			}
		}
	}
	bm, _ := upload16(t, d, make([]float64, 100), 0, ElemBF16)
	a, c := zeros(t, d, 100, 0), zeros(t, d, 100, 0)
	r := d.NewRecorder(false)
	err := MatMulGradA(r, a, c, bm, MatMulParams{M: 4, N: 3, K: 5, TransA: true, Alpha: 1}, false)
	if err == nil || !strings.Contains(err.Error(), "gradient of a") || !strings.Contains(err.Error(), "bf16") {
		t.Fatalf("gradient of a transposed A through a 16-bit B: got %v", err)
	}
	if r.Dispatches() != 0 {
		t.Fatalf("%d dispatches recorded", r.Dispatches())
	}
}

// A 16-bit B larger than one binding (the limit lowered to 1 MiB): the
// tied LM head's shape, N×K with K = 1024, just over the binding in 16-bit
// elements (the tiled variant splits it along N), and over the texel view
// too (both split). A sample of C is checked against the rounded B.
func TestMatMulW16AboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 1<<20)
	const k = 1024
	lim16 := maxElemsOf(d, ElemBF16)
	texels := 4 * int64(d.Info().MaxTexelBufferElements)
	variants := mmTestVariants(d)
	variants[0].texel = nil
	variants[1].tiled = &mmTiledCfg{wgX: 8, wgY: 1, tm: 8, tn: 8, bk: 8}
	for _, v := range variants {
		for i, n := range []int64{lim16/k + 2, texels/k + 2} {
			for _, typ := range types16 {
				p := MatMulParams{M: 3, N: int(n), K: k, TransB: true, Alpha: 1}
				t.Run(fmt.Sprintf("%s/%v/b%v", v.name, mmCase{p: p}, typ), func(t *testing.T) {
					matmulTexelOverride, matmulTiledOverride = v.texel, v.tiled
					defer func() { matmulTexelOverride, matmulTiledOverride = nil, nil }()
					rng := newRNG(14)
					a := tlF32(reftest.Randn(rng, 3*k, 1))
					bm, b := upload16(t, d, reftest.Randn(rng, int(n)*k, 1), 0, typ)
					am, cm := upload(t, d, a, 0), zeros(t, d, 3*int(n), 0)
					r := d.NewRecorder(false)
					if err := matmul(r, cm, am, bm, p, Mem{}, v.v); err != nil {
						t.Fatal(err)
					}
					if split := i == 1 || v.v == matmulTiled; split && r.Dispatches() < 2 {
						t.Fatalf("recorded as %d dispatch", r.Dispatches())
					}
					run(t, r)
					got := download(t, cm, 3*int(n))
					var sg, sw []float64
					for col := int64(0); col < n; col++ {
						if col%61 != 0 && col >= 130 && col < n-130 {
							continue
						}
						for m := 0; m < 3; m++ {
							s := 0.0
							for kk := 0; kk < k; kk++ {
								s += a[m*k+kk] * b[col*k+int64(kk)]
							}
							sg, sw = append(sg, got[int64(m)*n+col]), append(sw, s)
						}
					}
					reftest.CheckNMSE(t, "c (sampled)", sg, sw, tolFP32)
				})
			}
		}
	}
}

// A device without 16-bit integer texel formats gets the tiled variant for
// a 16-bit B, even where the texel one is forced.
func TestMatMulW16WithoutTexel16(t *testing.T) {
	d := gputest.Device(t)
	defer func(f func(*gpu.Device) bool) { mmTexel16 = f }(mmTexel16)
	mmTexel16 = func(*gpu.Device) bool { return false }
	t.Setenv("SHLPT_VK_MATMUL", "texel")
	rng := newRNG(15)
	p := MatMulParams{M: 33, N: 20, K: 12, TransB: true, Alpha: 1}
	a := tlF32(reftest.Randn(rng, 33*12, 1))
	bm, b := upload16(t, d, reftest.Randn(rng, 20*12, 1), 1, ElemBF16)
	am, cm := upload(t, d, a, 0), zeros(t, d, 33*20, 0)
	r := d.NewRecorder(true)
	if err := MatMul(r, cm, am, bm, p, Mem{}); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	for _, tm := range r.Timings() {
		if !strings.HasPrefix(tm.Label, "matmul_tiled_w16[") {
			t.Errorf("ran %s", tm.Label)
		}
	}
	want := make([]float64, 33*20)
	MatMulRef(want, a, b, p, nil)
	reftest.CheckNMSE(t, "c", download(t, cm, len(want)), want, tolFP32)
}

// 16-bit elements are accepted only where documented: B, not A, C or the
// bias; element counts are in 16-bit units.
func TestMatMulW16Errors(t *testing.T) {
	d := gputest.Device(t)
	a, c := zeros(t, d, 100, 0), zeros(t, d, 100, 0)
	h, _ := upload16(t, d, make([]float64, 100), 0, ElemF16)
	p := MatMulParams{M: 5, N: 4, K: 6, Alpha: 1}
	for _, tc := range []struct {
		name    string
		c, a, b Mem
		bias    Mem
		want    string
	}{
		{"a", c, h, a, Mem{}, "a (5x6, lda 6) holds f16 elements; only 32-bit ones are accepted"},
		{"c", h, a, c, Mem{}, "c (5x4, ldc 4) holds f16 elements"},
		{"bias", c, a, h, h.At(50), "bias (4) holds f16 elements"},
		{"b too small", c, a, h.At(80), Mem{}, "b (6x4, ldb 4) needs 24 elements at offset 80 but its buffer holds 100"},
	} {
		r := d.NewRecorder(false)
		if err := MatMul(r, tc.c, tc.a, tc.b, p, tc.bias); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// SHLPT_VK_MATMUL forces a variant; otherwise CPU devices get the texel one.
func TestMatMulVariantChoice(t *testing.T) {
	d := gputest.Device(t)
	want := matmulTiled
	if d.Info().Type == gpu.TypeCPU {
		want = matmulTexel
	}
	t.Setenv("SHLPT_VK_MATMUL", "")
	if got, err := mmChooseVariant(d); got != want || err != nil {
		t.Errorf("default on %s: %v (%v), want %v", d, got, err, want)
	}
	for _, v := range []matmulVariant{matmulTexel, matmulTiled} {
		t.Setenv("SHLPT_VK_MATMUL", v.String())
		if got, err := mmChooseVariant(d); got != v || err != nil {
			t.Errorf("SHLPT_VK_MATMUL=%v: got %v (%v)", v, got, err)
		}
	}
	// Anything else is an error naming the variable and the accepted
	// values, from MatMul itself, before anything is recorded.
	for _, bad := range []string{"Texel", "tiled ", "auto", "1"} {
		t.Setenv("SHLPT_VK_MATMUL", bad)
		a, b, c := zeros(t, d, 4, 0), zeros(t, d, 4, 0), zeros(t, d, 4, 0)
		r := d.NewRecorder(false)
		err := MatMul(r, c, a, b, MatMulParams{M: 2, N: 2, K: 2, Alpha: 1}, Mem{})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("SHLPT_VK_MATMUL=%q", bad)) || !strings.Contains(err.Error(), "texel and tiled") {
			t.Errorf("SHLPT_VK_MATMUL=%q: got %v", bad, err)
		}
		if r.Dispatches() != 0 {
			t.Errorf("SHLPT_VK_MATMUL=%q: %d dispatches recorded", bad, r.Dispatches())
		}
	}
}

// BenchmarkMatMul runs the benchmark shapes of `shlpt-vk bench --op matmul`.
func BenchmarkMatMul(b *testing.B) {
	for _, shape := range matmulBenchShapes {
		b.Run(strings.ReplaceAll(shape, "/", "_"), func(b *testing.B) {
			d := gputest.Device(b)
			c, err := matmulBench(d, shape)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Free()
			run := func() {
				r := d.NewRecorder(false)
				if err := c.Record(r); err != nil {
					b.Fatal(err)
				}
				if err := r.Run(); err != nil {
					b.Fatal(err)
				}
			}
			run() // warm-up: pipeline creation, first touch of memory
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			b.ReportMetric(c.Flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
