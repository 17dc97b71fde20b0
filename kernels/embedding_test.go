package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/half"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
)

// uploadIDs copies ids into a new int32 buffer with pad spare elements
// before them.
func uploadIDs(t testing.TB, d *gpu.Device, ids []int32, pad int64) Mem {
	t.Helper()
	b, err := d.Alloc(4 * (int64(len(ids)) + pad))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Free)
	if err := gpu.WriteSlice(b, pad, ids); err != nil {
		t.Fatal(err)
	}
	return Mem{Buf: b, Off: pad}
}

// embeddingIDs returns n ids in [0, V) with many duplicates, and, when bad,
// a few outside it.
func embeddingIDs(rng interface{ IntN(int) int }, n, V int, bad bool) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(V))
		if i%3 == 2 {
			ids[i] = ids[i/2] // duplicates
		}
		if bad && i%7 == 4 {
			ids[i] = []int32{-1, int32(V), -1 << 31, 1<<31 - 1}[i%4]
		}
	}
	return ids
}

func TestEmbeddingRefGradient(t *testing.T) {
	rng := newRNG(41)
	const V, C = 5, 3
	ids := []int32{1, 4, 1, 1, 0, -1, 5}
	table, g := reftest.Randn(rng, V*C, 1), reftest.Randn(rng, len(ids)*C, 1)
	out := make([]float64, len(ids)*C)
	dt := make([]float64, V*C)
	EmbeddingBackwardRef(dt, ids, g, V, C)
	reftest.CheckNMSE(t, "dtable", dt, reftest.NumGrad(func(v []float64) float64 { EmbeddingRef(out, ids, v, V, C); return reftest.Dot(g, out) }, table, 1e-5), 1e-16)
}

func TestEmbedding(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(42)
	type tc struct {
		n, V, C int
		pad     int64
	}
	var cases []tc
	for _, c := range awkward {
		cases = append(cases, tc{n: 33, V: 7, C: c, pad: int64(c % 4)}, tc{n: c, V: 129, C: 8, pad: 0})
	}
	cases = append(cases, tc{n: 1000, V: 1000, C: 1, pad: 1}, tc{n: 406, V: 32128 / 8, C: 64, pad: 4})
	for _, c := range cases {
		t.Run(fmt.Sprintf("n=%d/V=%d/C=%d/pad=%d", c.n, c.V, c.C, c.pad), func(t *testing.T) {
			ids := embeddingIDs(rng, c.n, c.V, true)
			table, dout := tlF32(reftest.Randn(rng, c.V*c.C, 1)), tlF32(reftest.Randn(rng, c.n*c.C, 1))
			dt0 := tlF32(reftest.Randn(rng, c.V*c.C, 1))
			im, tm, om := uploadIDs(t, d, ids, c.pad+1), upload(t, d, table, c.pad), zeros(t, d, c.n*c.C, c.pad+3)
			dom, dtm, dta := upload(t, d, dout, c.pad+2), zeros(t, d, c.V*c.C, c.pad), upload(t, d, dt0, c.pad+1)
			r := d.NewRecorder(false)
			if err := Fill(r, om, int64(c.n*c.C), 7); err != nil { // stale values to overwrite
				t.Fatal(err)
			}
			for _, err := range []error{
				Embedding(r, om, im, tm, c.n, c.V, c.C),
				EmbeddingBackward(r, dtm, im, dom, c.n, c.V, c.C, false),
				EmbeddingBackward(r, dta, im, dom, c.n, c.V, c.C, true),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			run(t, r)
			out, dt := make([]float64, c.n*c.C), make([]float64, c.V*c.C)
			EmbeddingRef(out, ids, table, c.V, c.C)
			EmbeddingBackwardRef(dt, ids, dout, c.V, c.C)
			reftest.CheckNMSE(t, "out", download(t, om, c.n*c.C), out, 0) // a copy: exact
			reftest.CheckNMSE(t, "dtable", download(t, dtm, c.V*c.C), dt, tolFP32)
			reftest.CheckNMSE(t, "dtable accumulated", download(t, dta, c.V*c.C), tlAdd(dt0, dt), tolFP32)
		})
	}
}

// Duplicate ids add up in the same order every time: bit-identical results.
func TestEmbeddingBackwardDeterministic(t *testing.T) {
	d := gputest.Device(t)
	rng := newRNG(43)
	const n, V, C = 2000, 3, 12
	ids := embeddingIDs(rng, n, V, false)
	dout := reftest.Randn(rng, n*C, 10)
	im, dom := uploadIDs(t, d, ids, 0), upload(t, d, dout, 0)
	var first []float64
	for rep := 0; rep < 3; rep++ {
		dt := zeros(t, d, V*C, 0)
		r := d.NewRecorder(false)
		if err := EmbeddingBackward(r, dt, im, dom, n, V, C, false); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		got := download(t, dt, V*C)
		if rep == 0 {
			first = got
			continue
		}
		reftest.CheckNMSE(t, "repeat", got, first, 0)
	}
}

// A table larger than one storage binding is processed in row chunks.
func TestEmbeddingAboveBindingLimit(t *testing.T) {
	d := gputest.Device(t)
	gputest.LimitBindings(t, d, 64<<10)
	const C = 3
	V := int(tlViewLimit(d)/C) + 100
	nv := int64(V) * C
	tb, err := d.Alloc(4 * (nv + 1))
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Free()
	table := Mem{Buf: tb, Off: 1}
	ids := []int32{0, int32(V - 1), int32(V / 2), int32(V - 1), -1, int32(V), int32(V - 50), 0}
	n := len(ids)
	// table[v, j] = v + j/4 (exact in float32 for these v) at the rows used.
	r := d.NewRecorder(false)
	if err := Fill(r, table, nv, 0); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	want := make([]float64, n*C)
	for i, id := range ids {
		if id < 0 || int(id) >= V {
			continue
		}
		row := make([]float32, C)
		for j := range row {
			row[j] = float32(id) + float32(j)/4
			want[i*C+j] = float64(row[j])
		}
		if err := gpu.WriteSlice(tb, 1+int64(id)*C, row); err != nil {
			t.Fatal(err)
		}
	}
	im, om := uploadIDs(t, d, ids, 1), zeros(t, d, n*C, 2)
	dout := make([]float64, n*C)
	for i := range dout {
		dout[i] = float64(i%5) + 0.5
	}
	dom := upload(t, d, dout, 3)
	r = d.NewRecorder(false)
	if err := Embedding(r, om, im, table, n, V, C); err != nil {
		t.Fatal(err)
	}
	if err := EmbeddingBackward(r, table, im, dom, n, V, C, false); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	reftest.CheckNMSE(t, "out", download(t, om, n*C), want, 0)
	dt := make([]float64, 0, 4*C)
	wantDT := make([]float64, 0, 4*C)
	for _, v := range []int32{0, int32(V / 2), int32(V - 50), int32(V - 1)} {
		dt = append(dt, download(t, table.At(int64(v)*C), C)...)
		for j := 0; j < C; j++ {
			s := 0.0
			for i, id := range ids {
				if id == v {
					s += dout[i*C+j]
				}
			}
			wantDT = append(wantDT, s)
		}
	}
	reftest.CheckNMSE(t, "dtable", dt, wantDT, 0)
}

// A 16-bit table (a frozen embedding in float16 or bfloat16): the rows are
// widened exactly, so the output equals the reference on the rounded table;
// on awkward sizes and offsets, and with the table split into row chunks
// under a lowered binding limit. Its gradient cannot be written (16-bit
// tables are frozen): an error.
func TestEmbeddingW16(t *testing.T) {
	d := gputest.Device(t)
	type tc struct {
		n, V, C int
		pad     int64
		limit   int64 // binding limit in bytes, 0: the device's
	}
	var cases []tc
	for _, c := range awkward {
		cases = append(cases, tc{n: 33, V: 7, C: c, pad: int64(c % 4)}, tc{n: c, V: 129, C: 8, pad: 1})
	}
	cases = append(cases, tc{n: 406, V: 32128 / 8, C: 64, pad: 4}, tc{n: 300, V: 5000, C: 7, pad: 3, limit: 16 << 10},
		tc{n: 70, V: 900, C: 33, pad: 0, limit: 16 << 10})
	for _, typ := range types16 {
		rng := newRNG(44)
		for _, c := range cases {
			t.Run(fmt.Sprintf("%v/n=%d/V=%d/C=%d/pad=%d/limit=%d", typ, c.n, c.V, c.C, c.pad, c.limit), func(t *testing.T) {
				if c.limit > 0 {
					gputest.LimitBindings(t, d, c.limit)
					if int64(2*c.V*c.C) <= c.limit {
						t.Fatalf("the table fits one binding")
					}
				}
				ids := embeddingIDs(rng, c.n, c.V, true)
				tm, table := upload16(t, d, reftest.Randn(rng, c.V*c.C, 1), c.pad, typ)
				im, om := uploadIDs(t, d, ids, c.pad+1), zeros(t, d, c.n*c.C, c.pad+3)
				r := d.NewRecorder(false)
				if err := Fill(r, om, int64(c.n*c.C), 7); err != nil { // stale values to overwrite
					t.Fatal(err)
				}
				if err := Embedding(r, om, im, tm, c.n, c.V, c.C); err != nil {
					t.Fatal(err)
				}
				if c.limit > 0 && r.Dispatches() < 3 {
					t.Fatalf("recorded as %d dispatches", r.Dispatches())
				}
				run(t, r)
				out := make([]float64, c.n*c.C)
				EmbeddingRef(out, ids, table, c.V, c.C)
				reftest.CheckNMSE(t, "out", download(t, om, c.n*c.C), out, 0) // widened copies: exact
				dom := upload(t, d, make([]float64, c.n*c.C), 0)
				if err := EmbeddingBackward(r, tm, im, dom, c.n, c.V, c.C, true); err == nil || !strings.Contains(err.Error(), "dtable holds "+typ.String()) {
					t.Fatalf("gradient into a 16-bit table: got %v", err)
				}
			})
		}
	}
}

// Every 16-bit pattern widens to its exact float32 value on the device
// (zeros with their sign, subnormals, infinities; NaN stays NaN): a
// 256×256 table holding all 65536 of them, gathered row by row.
func TestEmbeddingW16AllValues(t *testing.T) {
	d := gputest.Device(t)
	const V, C = 256, 256
	ids := make([]int32, V)
	for i := range ids {
		ids[i] = int32(V - 1 - i)
	}
	pats := make([]uint16, V*C)
	for i := range pats {
		pats[i] = uint16(i)
	}
	for _, typ := range types16 {
		tb, err := d.Alloc(2 * (V*C + 1))
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Free()
		if err := gpu.WriteSlice(tb, 1, pats); err != nil {
			t.Fatal(err)
		}
		im, om := uploadIDs(t, d, ids, 0), zeros(t, d, V*C, 0)
		r := d.NewRecorder(false)
		if err := Embedding(r, om, im, Mem{Buf: tb, Off: 1, Type: typ}, V, V, C); err != nil {
			t.Fatal(err)
		}
		run(t, r)
		got := make([]float32, V*C)
		if err := gpu.ReadSlice(om.Buf, om.Off, got); err != nil {
			t.Fatal(err)
		}
		for i, g := range got {
			h := pats[int(ids[i/C])*C+i%C]
			want := half.F16ToFloat32(h)
			if typ == ElemBF16 {
				want = half.BF16ToFloat32(h)
			}
			if math.IsNaN(float64(want)) {
				if !math.IsNaN(float64(g)) {
					t.Fatalf("%v %#04x: got %v, want NaN", typ, h, g)
				}
				continue
			}
			if math.Float32bits(g) != math.Float32bits(want) {
				t.Fatalf("%v %#04x: got %v (%#08x), want %v (%#08x)", typ, h, g, math.Float32bits(g), want, math.Float32bits(want))
			}
		}
	}
}

func TestEmbeddingErrors(t *testing.T) {
	d := gputest.Device(t)
	ids := uploadIDs(t, d, []int32{1, 2, 3}, 0)
	table, out := zeros(t, d, 10*4, 0), zeros(t, d, 3*4, 0)
	r := d.NewRecorder(false)
	if err := Embedding(r, out, ids, table, 3, 11, 4); err == nil || !strings.Contains(err.Error(), "table needs 44") || !strings.Contains(err.Error(), "11x4") {
		t.Errorf("short table: got %v", err)
	}
	if err := Embedding(r, zeros(t, d, 16, 0), ids, table, 4, 10, 4); err == nil || !strings.Contains(err.Error(), "ids needs 4") {
		t.Errorf("short ids: got %v", err)
	}
	if err := EmbeddingBackward(r, table, ids, out, 3, 10, 5, false); err == nil || !strings.Contains(err.Error(), "embedding backward") {
		t.Errorf("short dout: got %v", err)
	}
}

func BenchmarkEmbedding(b *testing.B)         { tlBench(b, "embedding", "3248x32128x1024") }
func BenchmarkEmbeddingBackward(b *testing.B) { tlBench(b, "embedding-bwd", "3248x32128x1024") }
