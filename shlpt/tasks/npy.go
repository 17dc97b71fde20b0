package tasks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// The NumPy .npy header fields this reader needs.
var (
	npyDescr = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)
	npyShape = regexp.MustCompile(`'shape'\s*:\s*\(\s*(\d+)\s*,?\s*\)`)
)

// readNPYInts reads a one-dimensional NumPy array of little-endian
// integers (<i8, <i4, <u8, <u4), as ProgressivePrompts' good_id_yahoo
// files hold.
func readNPYInts(r io.Reader) ([]int, error) {
	return readNPYIntsLimited(r, MaxDocumentSize)
}

func readNPYIntsLimited(r io.Reader, limit int64) ([]int, error) {
	data, err := limitio.ReadAll(r, limit, "", "a .npy row filter")
	if err != nil {
		return nil, err
	}
	if len(data) < 10 || !bytes.Equal(data[:6], []byte("\x93NUMPY")) {
		return nil, errors.New("not a NumPy .npy file")
	}
	var hlen, off int
	switch data[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		if len(data) < 12 {
			return nil, errors.New("truncated .npy header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(data[8:12])), 12
	default:
		return nil, fmt.Errorf(".npy version %d is not supported", data[6])
	}
	if hlen < 0 || off+hlen > len(data) || off+hlen < off {
		return nil, errors.New("truncated .npy header")
	}
	header, body := data[off:off+hlen], data[off+hlen:]
	d := npyDescr.FindSubmatch(header)
	s := npyShape.FindSubmatch(header)
	if d == nil || s == nil {
		return nil, fmt.Errorf(".npy header %q: expected a one-dimensional array", header)
	}
	n, err := strconv.Atoi(string(s[1]))
	if err != nil {
		return nil, fmt.Errorf(".npy shape %q: %v", s[1], err)
	}
	var size int
	var get func([]byte) (int64, bool)
	switch string(d[1]) {
	case "<i8":
		size = 8
		get = func(b []byte) (int64, bool) { return int64(binary.LittleEndian.Uint64(b)), true }
	case "<u8":
		size = 8
		get = func(b []byte) (int64, bool) { v := binary.LittleEndian.Uint64(b); return int64(v), v>>63 == 0 }
	case "<i4":
		size = 4
		get = func(b []byte) (int64, bool) { return int64(int32(binary.LittleEndian.Uint32(b))), true }
	case "<u4":
		size = 4
		get = func(b []byte) (int64, bool) { return int64(binary.LittleEndian.Uint32(b)), true }
	default:
		return nil, fmt.Errorf(".npy element type %q: expected little-endian integers (<i8, <i4, <u8, <u4)", d[1])
	}
	if n > len(body)/size || len(body) != n*size {
		return nil, fmt.Errorf(".npy holds %d bytes of data for %d elements of %d bytes", len(body), n, size)
	}
	out := make([]int, n)
	for i := range out {
		v, ok := get(body[i*size:])
		if !ok || v < 0 || v > int64(int(^uint(0)>>1)) {
			return nil, fmt.Errorf(".npy element %d is not a row index", i)
		}
		out[i] = int(v)
	}
	return out, nil
}

// keepRows returns exs[i] for every index i in the .npy file at path, in
// file order, as numpy's fancy indexing does. The file must be a regular
// file of at most MaxDocumentSize bytes.
func keepRows(exs []Example, path string) ([]Example, error) {
	f, _, err := limitio.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := readNPYInts(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]Example, len(ids))
	for i, id := range ids {
		if id >= len(exs) {
			return nil, fmt.Errorf("%s: row index %d at position %d, but the file has %d rows", path, id, i, len(exs))
		}
		out[i] = exs[id]
	}
	return out, nil
}
