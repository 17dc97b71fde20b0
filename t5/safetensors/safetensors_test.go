package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// encode returns the bytes of a safetensors file holding tensors.
func encode(t testing.TB, tensors []Tensor, metadata map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, metadata); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawFile builds a file from a literal JSON header and a data section.
func rawFile(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func le16(vals ...uint16) []byte {
	b := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	f64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.1))
	binary.LittleEndian.PutUint64(f64[8:], math.Float64bits(-3))
	i32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(i32, uint32(0xffffffff)) // -1
	binary.LittleEndian.PutUint32(i32[4:], 7)
	tensors := []Tensor{
		FromFloat32("w", []int{2, 3}, []float32{1, -2, 3.5, 0, float32(math.Inf(1)), 1e-30}),
		FromInt64("ids", []int{3}, []int64{-100, 0, 1 << 40}),
		FromFloat32("scalar", nil, []float32{42}),
		FromFloat32("empty", []int{0, 4}, nil),
		{Name: "half", DType: F16, Shape: []int{3}, Data: le16(0x3c00, 0xc000, 0x0001)},
		{Name: "bhalf", DType: BF16, Shape: []int{2}, Data: le16(0x3f80, 0xc0a0)},
		{Name: "double", DType: F64, Shape: []int{2}, Data: f64},
		{Name: "i32", DType: I32, Shape: []int{2}, Data: i32},
		{Name: "i8", DType: I8, Shape: []int{2}, Data: []byte{0xff, 5}},
		{Name: "u8", DType: U8, Shape: []int{2}, Data: []byte{0xff, 5}},
		{Name: "mask", DType: BOOL, Shape: []int{1, 2}, Data: []byte{1, 0}},
	}
	meta := map[string]string{"format": "pt", "note": "x"}
	data := encode(t, tensors, meta)
	f, err := Parse("mem.safetensors", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata(), meta) {
		t.Errorf("metadata %v, want %v", f.Metadata(), meta)
	}
	if len(f.Names()) != len(tensors) {
		t.Fatalf("names %v", f.Names())
	}
	hdr := binary.LittleEndian.Uint64(data)
	if hdr%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hdr)
	}
	for _, want := range tensors {
		got, ok := f.Tensor(want.Name)
		if !ok {
			t.Fatalf("missing %q", want.Name)
		}
		if got.DType != want.DType || !bytes.Equal(got.Data, want.Data) || len(got.Shape) != len(want.Shape) {
			t.Errorf("%s: got %s %v % x, want %s %v % x", want.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
		if got.File() != "mem.safetensors" {
			t.Errorf("%s: File() = %q", want.Name, got.File())
		}
	}
	checkF32 := func(name string, want []float32) {
		t.Helper()
		tt, err := f.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tt.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", name, got, want)
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("%s[%d] = %g, want %g", name, i, got[i], want[i])
			}
		}
	}
	checkF32("w", []float32{1, -2, 3.5, 0, float32(math.Inf(1)), 1e-30})
	checkF32("scalar", []float32{42})
	checkF32("empty", []float32{})
	checkF32("half", []float32{1, -2, float32(math.Ldexp(1, -24))})
	checkF32("bhalf", []float32{1, -5})
	checkF32("double", []float32{float32(0.1), -3})
	checkI64 := func(name string, want []int64) {
		t.Helper()
		tt, _ := f.Tensor(name)
		got, err := tt.Int64()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	checkI64("ids", []int64{-100, 0, 1 << 40})
	checkI64("i32", []int64{-1, 7})
	checkI64("i8", []int64{-1, 5})
	checkI64("u8", []int64{255, 5})
	checkI64("mask", []int64{1, 0})

	w, _ := f.Tensor("w")
	if _, err := w.Int64(); err == nil || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("Int64 of F32: err = %v", err)
	}
	ids, _ := f.Tensor("ids")
	if _, err := ids.Float32(); err == nil || !strings.Contains(err.Error(), `"ids"`) {
		t.Errorf("Float32 of I64: err = %v", err)
	}
	if err := w.ReadFloat32(make([]float32, 5)); err == nil {
		t.Error("ReadFloat32 into a short buffer succeeded")
	}
	if _, err := f.Get("nope"); err == nil || !strings.Contains(err.Error(), "mem.safetensors") {
		t.Errorf("Get(missing): err = %v", err)
	}
}

func TestAlignment(t *testing.T) {
	tensors := []Tensor{
		{Name: "a", DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}},
		FromInt64("b", []int{1}, []int64{5}),
		FromFloat32("c", []int{1}, []float32{1}),
	}
	data := encode(t, tensors, nil)
	f, err := Parse("x", data)
	if err != nil {
		t.Fatal(err)
	}
	base := 8 + int(binary.LittleEndian.Uint64(data))
	for _, name := range f.Names() {
		tt, _ := f.Tensor(name)
		off := base + offsetIn(data, tt.Data)
		if off%tt.DType.Size() != 0 {
			t.Errorf("%s at file offset %d is not aligned to %d", name, off, tt.DType.Size())
		}
	}
}

// offsetIn returns the offset of the slice sub inside the data section of the
// file whole, comparing element addresses.
func offsetIn(whole, sub []byte) int {
	n := binary.LittleEndian.Uint64(whole)
	buf := whole[8+n:]
	for i := 0; i+len(sub) <= len(buf); i++ {
		if &buf[i] == &sub[0] {
			return i
		}
	}
	return -1
}

func TestFloat16Exact(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e := (h >> 10) & 0x1f
		m := float64(h & 0x3ff)
		var want float64
		switch {
		case e == 0:
			want = sign * m * math.Ldexp(1, -24)
		case e == 31 && m == 0:
			want = math.Inf(int(sign))
		case e == 31:
			want = math.NaN()
		default:
			want = sign * (1 + m/1024) * math.Ldexp(1, e-15)
		}
		got := Float16ToFloat32(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %g, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("%#04x: got %g, want %g", h, got, want)
		}
	}
}

func TestBFloat16(t *testing.T) {
	for _, c := range []struct {
		in   uint16
		want float32
	}{{0x3f80, 1}, {0xbf80, -1}, {0x4049, 3.140625}, {0x0000, 0}, {0x7f80, float32(math.Inf(1))}} {
		if got := BFloat16ToFloat32(c.in); got != c.want {
			t.Errorf("%#04x: got %g, want %g", c.in, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	four := make([]byte, 16)
	cases := []struct {
		name string
		file []byte
		want []string // substrings of the error
	}{
		{"empty", nil, []string{"bad.st", "shorter than"}},
		{"short", []byte{1, 2, 3}, []string{"bad.st", "shorter than"}},
		{"header beyond file", rawFile(`{}`, nil)[:9], []string{"header length 2", "beyond the end"}},
		{"huge header length", append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "{}"...), []string{"beyond the end"}},
		{"bad json", rawFile(`{"a": {`, nil), []string{"bad.st", "invalid JSON"}},
		{"not object", rawFile(`[1, 2]`, nil), []string{"not a JSON object"}},
		{"trailing", rawFile(`{} {}`, nil), []string{"trailing data"}},
		{"unknown dtype", rawFile(`{"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, `unknown dtype "Q7"`}},
		{"missing dtype", rawFile(`{"x": {"shape": [1], "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, "missing dtype"}},
		{"missing shape", rawFile(`{"x": {"dtype": "F32", "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, "missing shape"}},
		{"missing offsets", rawFile(`{"x": {"dtype": "F32", "shape": [1]}}`, four), []string{`tensor "x"`, "data_offsets must hold 2"}},
		{"three offsets", rawFile(`{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}`, four), []string{`tensor "x"`, "data_offsets must hold 2"}},
		{"negative offset", rawFile(`{"x": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}`, four), []string{`tensor "x"`, "non-negative integer"}},
		{"size mismatch", rawFile(`{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, "needs 8 bytes", "span 4"}},
		{"out of range", rawFile(`{"x": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}`, four), []string{"bad.st", `tensor "x"`, "beyond the data section", "truncated"}},
		{"reversed", rawFile(`{"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}`, four), []string{`tensor "x"`, "reversed"}},
		{"overlap", rawFile(`{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}`, four), []string{`tensor "y"`, `overlap tensor "x"`}},
		{"same range", rawFile(`{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "y": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}`, four), []string{"overlap"}},
		{"negative dim", rawFile(`{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, "negative"}},
		{"fractional dim", rawFile(`{"x": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, "not an integer"}},
		{"overflowing shape", rawFile(`{"x": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}}`, four), []string{`tensor "x"`, "too many elements"}},
		{"overflowing product", rawFile(`{"x": {"dtype": "F64", "shape": [1152921504606846976], "data_offsets": [0, 0]}}`, four), []string{`tensor "x"`, "too many elements"}},
		{"dim beyond int64", rawFile(`{"x": {"dtype": "F32", "shape": [99999999999999999999], "data_offsets": [0, 4]}}`, four), []string{`tensor "x"`, "not an integer in range"}},
		{"duplicate", rawFile(`{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}`, four), []string{`"x" appears twice`}},
		{"bad metadata", rawFile(`{"__metadata__": {"a": 1}}`, nil), []string{"__metadata__"}},
		{"entry not object", rawFile(`{"x": 3}`, nil), []string{`tensor "x"`, "bad entry"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse("bad.st", c.file)
			if err == nil {
				t.Fatalf("no error; names %v", f.Names())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "bad.st: ") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	four := make([]byte, 16)
	for name, hdr := range map[string]string{
		"gap and trailing bytes":   `{"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}`,
		"zero-size inside another": `{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}`,
		"unknown fields ignored":   `{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": true}}`,
		"no tensors":               `{"__metadata__": {"format": "pt"}}`,
	} {
		if _, err := Parse("ok.st", rawFile(hdr, four)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestUint64Overflow(t *testing.T) {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, math.MaxUint64)
	tt := Tensor{Name: "u", DType: U64, Shape: []int{1}, Data: b}
	if _, err := tt.Int64(); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("err = %v", err)
	}
}

func TestWriteOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.safetensors")
	vals := []float32{1, 2, 3, 4, 5, 6}
	if err := Write(path, []Tensor{FromFloat32("prompt", []int{2, 3}, vals)}, map[string]string{"task": "cb"}); err != nil {
		t.Fatal(err)
	}
	// Overwriting replaces the file; no temporary files remain.
	vals[0] = 9
	if err := Write(path, []Tensor{FromFloat32("prompt", []int{2, 3}, vals)}, map[string]string{"task": "cb"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after Write, want 1", len(entries))
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Get("prompt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, vals) || f.Metadata()["task"] != "cb" || p.File() != path {
		t.Errorf("got %v %v %q", got, f.Metadata(), p.File())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if p.Data != nil {
		t.Error("tensor data still set after Close")
	}

	// Invalid input leaves nothing behind.
	bad := Tensor{Name: "b", DType: F32, Shape: []int{3}, Data: make([]byte, 4)}
	if err := Write(filepath.Join(dir, "bad.safetensors"), []Tensor{bad}, nil); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("Write of inconsistent tensor: err = %v", err)
	}
	if err := Write(filepath.Join(dir, "dup.safetensors"), []Tensor{FromFloat32("a", nil, []float32{1}), FromFloat32("a", nil, []float32{1})}, nil); err == nil {
		t.Error("Write of duplicate names succeeded")
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after failed writes, want 1", len(entries))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	trunc := filepath.Join(dir, "trunc.safetensors")
	full := encode(t, []Tensor{FromFloat32("w", []int{4}, []float32{1, 2, 3, 4})}, nil)
	if err := os.WriteFile(trunc, full[:len(full)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(trunc)
	if err == nil || !strings.Contains(err.Error(), trunc) || !strings.Contains(err.Error(), `"w"`) {
		t.Errorf("truncated file: err = %v", err)
	}
	empty := filepath.Join(dir, "empty.safetensors")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("empty file: err = %v", err)
	}
}

func TestFixture(t *testing.T) {
	f, err := Open(filepath.Join("..", "..", "testdata", "t5-tiny-relu", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := len(f.Names()); n != 49 {
		t.Errorf("%d tensors, want 49", n)
	}
	w, err := f.Get("shared.weight")
	if err != nil {
		t.Fatal(err)
	}
	if w.DType != F32 || !reflect.DeepEqual(w.Shape, []int{100, 32}) {
		t.Errorf("shared.weight: %s %v", w.DType, w.Shape)
	}
	v, err := w.Float32()
	if err != nil || len(v) != 3200 {
		t.Fatalf("Float32: %d values, %v", len(v), err)
	}
	c, err := Open(filepath.Join("..", "..", "testdata", "t5-tiny-relu", "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ids, err := c.Get("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	iv, err := ids.Int64()
	if err != nil || len(iv) != ids.NumElements() {
		t.Fatalf("Int64: %v", err)
	}
	if c.Metadata()["prompt_len"] == "" {
		t.Errorf("case metadata %v lacks prompt_len", c.Metadata())
	}
}
