// Package safetensors reads and writes tensors in the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header mapping each tensor name to its dtype, shape and byte
// range, then the raw little-endian data.
//
// Open memory-maps the file read-only so that a multi-gigabyte checkpoint is
// not copied into the Go heap; Tensor.Data is a view into that mapping and is
// valid until Close. Every structural problem in a file (truncation, header
// offsets out of range or overlapping, unknown dtype, size mismatch) is an
// error naming the file and the tensor.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strconv"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation does
// (100 MB), so that a corrupt length cannot make the reader allocate wildly.
const MaxHeaderSize = 100 << 20

// maxElements bounds the element count of one tensor. Anything larger cannot
// be backed by a real file and would overflow byte-size arithmetic.
const maxElements = 1 << 53

// Tensor is one tensor of a file: its type, shape and raw little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	// Shape lists the dimensions, outermost first; empty for a scalar.
	Shape []int
	// Data holds the elements, little-endian. For a tensor read from a file it
	// aliases the file's memory mapping: read-only, valid until Close.
	Data []byte

	file string // path of the file holding the tensor, for messages
}

// File returns the path of the file the tensor was read from ("" for a tensor
// built in memory).
func (t *Tensor) File() string { return t.file }

// NumElements returns the product of the dimensions (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

func (t *Tensor) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: tensor %q: %s", t.file, t.Name, fmt.Sprintf(format, args...))
}

// checkData checks that Data holds exactly NumElements elements of DType.
func (t *Tensor) checkData() error {
	size := t.DType.Size()
	if size == 0 {
		return t.errorf("unknown dtype %q", t.DType)
	}
	n, err := numElements(t.Shape)
	if err != nil {
		return t.errorf("%v", err)
	}
	if uint64(len(t.Data)) != n*uint64(size) {
		return t.errorf("shape %v of %s needs %d bytes, data has %d", t.Shape, t.DType, n*uint64(size), len(t.Data))
	}
	return nil
}

// Float32 returns the elements converted to float32: F32 as is, F16 and BF16
// exactly, F64 rounded to nearest. Other dtypes are an error.
func (t *Tensor) Float32() ([]float32, error) {
	if err := t.checkData(); err != nil {
		return nil, err
	}
	dst := make([]float32, t.NumElements())
	if err := t.ReadFloat32(dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// ReadFloat32 converts the elements into dst, which must have exactly
// NumElements entries: a caller can fill a staging buffer directly without a
// second copy of the tensor in the heap.
func (t *Tensor) ReadFloat32(dst []float32) error {
	if !t.DType.IsFloat() {
		return t.errorf("dtype %s cannot be read as float32", t.DType)
	}
	if err := t.checkData(); err != nil {
		return err
	}
	if len(dst) != t.NumElements() {
		return t.errorf("destination has %d elements, tensor has %d", len(dst), t.NumElements())
	}
	decodeFloat32(dst, t.Data, t.DType)
	return nil
}

// Int64 returns the elements of an integer or BOOL tensor as int64.
func (t *Tensor) Int64() ([]int64, error) {
	if !t.DType.IsInt() {
		return nil, t.errorf("dtype %s cannot be read as int64", t.DType)
	}
	if err := t.checkData(); err != nil {
		return nil, err
	}
	dst := make([]int64, t.NumElements())
	if err := decodeInt64(dst, t.Data, t.DType); err != nil {
		return nil, t.errorf("%v", err)
	}
	return dst, nil
}

// File is an open safetensors file.
type File struct {
	path     string
	data     []byte // the whole file
	unmap    func() error
	metadata map[string]string
	tensors  map[string]*Tensor
	names    []string // sorted
}

// Open reads the safetensors file at path, memory-mapping it read-only when
// the platform allows and reading it into memory otherwise. The caller must
// Close it; tensor data is not usable afterwards.
func Open(path string) (*File, error) {
	data, unmap, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(path, data)
	if err != nil {
		if unmap != nil {
			unmap()
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse parses a complete safetensors file held in data; name is used in error
// messages. Tensor data aliases data.
func Parse(name string, data []byte) (*File, error) {
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	if len(data) < 8 {
		return nil, errf("file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		return nil, errf("header length %d goes beyond the end of the file (%d bytes)", n, len(data))
	}
	if n > MaxHeaderSize {
		return nil, errf("header length %d exceeds the limit of %d", n, MaxHeaderSize)
	}
	header := data[8 : 8+n]
	buf := data[8+n:]

	entries, metadata, err := parseHeader(header)
	if err != nil {
		return nil, errf("header: %v", err)
	}
	f := &File{
		path:     name,
		data:     data,
		metadata: metadata,
		tensors:  make(map[string]*Tensor, len(entries)),
	}
	type span struct {
		name       string
		begin, end uint64
	}
	spans := make([]span, 0, len(entries))
	for _, e := range entries {
		terr := func(format string, args ...any) error {
			return fmt.Errorf("%s: tensor %q: %s", name, e.name, fmt.Sprintf(format, args...))
		}
		dt := DType(e.dtype)
		size := dt.Size()
		if size == 0 {
			return nil, terr("unknown dtype %q", e.dtype)
		}
		count, err := numElements(e.shape)
		if err != nil {
			return nil, terr("%v", err)
		}
		begin, end := e.offsets[0], e.offsets[1]
		if begin > end {
			return nil, terr("data_offsets [%d, %d] are reversed", begin, end)
		}
		if end > uint64(len(buf)) {
			return nil, terr("data_offsets [%d, %d] go beyond the data section (%d bytes; the file may be truncated)", begin, end, len(buf))
		}
		if want := count * uint64(size); want != end-begin {
			return nil, terr("shape %v of %s needs %d bytes, data_offsets [%d, %d] span %d", e.shape, dt, want, begin, end, end-begin)
		}
		f.tensors[e.name] = &Tensor{
			Name:  e.name,
			DType: dt,
			Shape: e.shape,
			Data:  buf[begin:end:end],
			file:  name,
		}
		f.names = append(f.names, e.name)
		if end > begin {
			spans = append(spans, span{e.name, begin, end})
		}
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].name < spans[j].name
	})
	for i := 1; i < len(spans); i++ {
		if p, s := spans[i-1], spans[i]; s.begin < p.end {
			return nil, errf("tensor %q: data_offsets [%d, %d] overlap tensor %q at [%d, %d]", s.name, s.begin, s.end, p.name, p.begin, p.end)
		}
	}
	sort.Strings(f.names)
	return f, nil
}

// numElements returns the product of shape, rejecting negative dimensions and
// products too large for any file.
func numElements(shape []int) (uint64, error) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > maxElements {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n = lo
	}
	return n, nil
}

type headerEntry struct {
	name    string
	dtype   string
	shape   []int
	offsets [2]uint64
}

// parseHeader decodes the JSON header. It walks the top-level object token by
// token so that a name given twice is an error rather than silently replaced.
func parseHeader(header []byte) ([]headerEntry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	var entries []headerEntry
	var metadata map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON: %v", err)
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return nil, nil, fmt.Errorf("%q appears twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("invalid JSON at %q: %v", key, err)
		}
		if key == "__metadata__" {
			if err := json.Unmarshal(raw, &metadata); err != nil {
				return nil, nil, fmt.Errorf("__metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		e, err := parseEntry(key, raw)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %v", key, err)
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("trailing data after the JSON object")
	}
	return entries, metadata, nil
}

func parseEntry(name string, raw json.RawMessage) (headerEntry, error) {
	var info struct {
		DType       *string       `json:"dtype"`
		Shape       []json.Number `json:"shape"`
		DataOffsets []json.Number `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&info); err != nil {
		return headerEntry{}, fmt.Errorf("bad entry: %v", err)
	}
	e := headerEntry{name: name}
	if info.DType == nil {
		return e, errors.New("missing dtype")
	}
	e.dtype = *info.DType
	if info.Shape == nil {
		return e, errors.New("missing shape")
	}
	e.shape = make([]int, len(info.Shape))
	for i, s := range info.Shape {
		v, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return e, fmt.Errorf("shape dimension %s is not an integer in range", s)
		}
		if v < 0 {
			return e, fmt.Errorf("shape dimension %d is negative", v)
		}
		if int64(int(v)) != v {
			return e, fmt.Errorf("shape dimension %d is too large", v)
		}
		e.shape[i] = int(v)
	}
	if len(info.DataOffsets) != 2 {
		return e, fmt.Errorf("data_offsets must hold 2 integers, has %d", len(info.DataOffsets))
	}
	for i, s := range info.DataOffsets {
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return e, fmt.Errorf("data_offsets entry %s is not a non-negative integer", s)
		}
		e.offsets[i] = v
	}
	return e, nil
}

// Path returns the path the file was opened from.
func (f *File) Path() string { return f.path }

// Metadata returns the free-form string map of the header (nil if none).
func (f *File) Metadata() map[string]string { return f.metadata }

// Names returns the tensor names in sorted order.
func (f *File) Names() []string { return f.names }

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Get returns the tensor called name, or an error naming the file and tensor.
func (f *File) Get(name string) (*Tensor, error) {
	if t, ok := f.tensors[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%s: no tensor %q", f.path, name)
}

// Close releases the file's memory. Tensor data must not be used afterwards.
func (f *File) Close() error {
	f.data = nil
	for _, t := range f.tensors {
		t.Data = nil
	}
	if f.unmap == nil {
		return nil
	}
	unmap := f.unmap
	f.unmap = nil
	if err := unmap(); err != nil {
		return fmt.Errorf("%s: unmap: %v", f.path, err)
	}
	return nil
}

// maxFileSize bounds a safetensors file read into memory: beyond any
// checkpoint, but finite.
const maxFileSize = 1 << 50

// readWhole reads the regular file at path into memory; the fallback when
// mapping is not possible.
func readWhole(path string) ([]byte, func() error, error) {
	data, err := limitio.ReadFile(path, maxFileSize, "a safetensors file")
	if err != nil {
		return nil, nil, err
	}
	return data, nil, nil
}
