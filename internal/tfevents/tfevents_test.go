package tfevents

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// CRC-32C check values: the catalogue's "123456789" and the test vectors
// of RFC 3720 appendix B.4.
func TestCRC32CVectors(t *testing.T) {
	ascending, descending := make([]byte, 32), make([]byte, 32)
	for i := range ascending {
		ascending[i], descending[i] = byte(i), byte(31-i)
	}
	iscsiRead := []byte{
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	for _, c := range []struct {
		name string
		in   []byte
		want uint32
	}{
		{"123456789", []byte("123456789"), 0xe3069283},
		{"32 zeros", make([]byte, 32), 0x8a9136aa},
		{"32 x ff", bytes.Repeat([]byte{0xff}, 32), 0x62a8ab43},
		{"ascending", ascending, 0x46dd794e},
		{"descending", descending, 0x113fdb5c},
		{"iSCSI read", iscsiRead, 0xd9963a56},
	} {
		if got := CRC32C(c.in); got != c.want {
			t.Errorf("%s: CRC-32C %08x, want %08x", c.name, got, c.want)
		}
		if got := bitwiseCRC32C(c.in); got != c.want {
			t.Errorf("%s: the test's bitwise CRC-32C gives %08x, want %08x", c.name, got, c.want)
		}
	}
}

// bitwiseCRC32C is CRC-32C computed bit by bit (reflected polynomial
// 0x82f63b78), independent of hash/crc32's tables.
func bitwiseCRC32C(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0x82f63b78
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

func unmask(m uint32) uint32 {
	r := m - 0xa282ead8
	return r>>17 | r<<15
}

// A written file read back by a decoder written here from the format's
// description: the framing and both checksums of every record, then the
// Event fields.
func TestWriteReadBack(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Version(1700000000.25)
	w.Scalar(1700000001.5, 1, "train/loss", 2.5)
	w.Scalar(1700000002, 300, "valid/cb", -0.125)
	w.Scalar(1700000003, 1<<40, "alpha/rte/cb", float32(math.Inf(1)))
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	events, err := decodeFile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []decoded{
		{wall: 1700000000.25, version: "brain.Event:2"},
		{wall: 1700000001.5, step: 1, tag: "train/loss", value: 2.5},
		{wall: 1700000002, step: 300, tag: "valid/cb", value: -0.125},
		{wall: 1700000003, step: 1 << 40, tag: "alpha/rte/cb", value: float32(math.Inf(1))},
	}
	if len(events) != len(want) {
		t.Fatalf("read %d events, want %d", len(events), len(want))
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, events[i], want[i])
		}
	}
	// A flipped payload bit is caught by the payload checksum.
	b := append([]byte(nil), buf.Bytes()...)
	b[len(b)-8] ^= 1
	if _, err := decodeFile(b); err == nil {
		t.Error("a flipped bit went unnoticed")
	}
}

type decoded struct {
	wall    float64
	step    int64
	version string
	tag     string
	value   float32
}

func decodeFile(b []byte) ([]decoded, error) {
	var out []decoded
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, fmt.Errorf("truncated header")
		}
		n := binary.LittleEndian.Uint64(b)
		if unmask(binary.LittleEndian.Uint32(b[8:])) != bitwiseCRC32C(b[:8]) {
			return nil, fmt.Errorf("length checksum")
		}
		if uint64(len(b)) < 16+n {
			return nil, fmt.Errorf("truncated record")
		}
		data := b[12 : 12+n]
		if unmask(binary.LittleEndian.Uint32(b[12+n:])) != bitwiseCRC32C(data) {
			return nil, fmt.Errorf("payload checksum")
		}
		ev, err := decodeEvent(data)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
		b = b[16+n:]
	}
	return out, nil
}

// fields splits a protocol buffer message into (field, wire, value) with
// value the varint, the fixed bits or the bytes.
type field struct {
	num, wire int
	u         uint64
	bytes     []byte
}

func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("bad key")
		}
		b = b[n:]
		f := field{num: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case 0:
			f.u, n = binary.Uvarint(b)
			if n <= 0 {
				return nil, fmt.Errorf("bad varint")
			}
			b = b[n:]
		case 1:
			f.u, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			f.u, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, fmt.Errorf("bad length")
			}
			f.bytes, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, fmt.Errorf("wire type %d", f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

func decodeEvent(b []byte) (decoded, error) {
	var d decoded
	fs, err := fields(b)
	if err != nil {
		return d, err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			d.wall = math.Float64frombits(f.u)
		case 2:
			d.step = int64(f.u)
		case 3:
			d.version = string(f.bytes)
		case 5:
			vals, err := fields(f.bytes)
			if err != nil || len(vals) != 1 || vals[0].num != 1 {
				return d, fmt.Errorf("summary: %v", err)
			}
			vs, err := fields(vals[0].bytes)
			if err != nil {
				return d, err
			}
			for _, v := range vs {
				switch v.num {
				case 1:
					d.tag = string(v.bytes)
				case 2:
					d.value = math.Float32frombits(uint32(v.u))
				}
			}
		}
	}
	return d, nil
}

// ReadScalars reads back what the writer wrote and refuses a damaged file.
func TestReadScalars(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Version(1)
	w.Scalar(2, 7, "a/b", 0.5)
	s, err := ReadScalars(buf.Bytes())
	if err != nil || len(s) != 1 || s[0] != (Scalar{Wall: 2, Step: 7, Tag: "a/b", Value: 0.5}) {
		t.Fatalf("read %+v, %v", s, err)
	}
	if _, err := ReadScalars(buf.Bytes()[:buf.Len()-1]); err == nil {
		t.Error("a truncated file was read")
	}
}
