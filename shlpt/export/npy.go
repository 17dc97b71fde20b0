package export

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// encodeNPY returns a NumPy .npy file (format 1.0) holding values as a
// little-endian float32 array of the given shape, C order: what
// numpy.load reads back as an array of dtype float32.
func encodeNPY(shape []int, values []float32) ([]byte, error) {
	n := 1
	dims := ""
	for _, d := range shape {
		n *= d
		dims += fmt.Sprintf("%d, ", d)
	}
	if n != len(values) {
		return nil, fmt.Errorf("npy: %d values for shape %v", len(values), shape)
	}
	if len(shape) > 1 {
		dims = dims[:len(dims)-2] // "(3, 4)"; a 1-D shape keeps its comma: "(3,)"
	} else {
		dims = dims[:len(dims)-1]
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims)
	// The magic, version, length and header end with a newline on a
	// 64-byte boundary.
	total := 10 + len(header) + 1
	pad := (64 - total%64) % 64
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)+pad+1))
	b.WriteString(header)
	b.Write(bytes.Repeat([]byte{' '}, pad))
	b.WriteByte('\n')
	var w [4]byte
	for _, v := range values {
		binary.LittleEndian.PutUint32(w[:], math.Float32bits(v))
		b.Write(w[:])
	}
	return b.Bytes(), nil
}
