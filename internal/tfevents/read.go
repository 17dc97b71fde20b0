package tfevents

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Scalar is one scalar event as read back.
type Scalar struct {
	Wall  float64
	Step  int64
	Tag   string
	Value float32
}

// ReadScalars parses an event file written by this package: every record's
// framing and checksums, and the scalar events (the file-version event is
// checked and skipped).
func ReadScalars(b []byte) ([]Scalar, error) {
	var out []Scalar
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			return nil, fmt.Errorf("event file: truncated record header at byte %d", off)
		}
		n := binary.LittleEndian.Uint64(b[off:])
		if binary.LittleEndian.Uint32(b[off+8:]) != MaskedCRC(b[off:off+8]) {
			return nil, fmt.Errorf("event file: bad length checksum at byte %d", off)
		}
		if n > uint64(len(b)-off-16) {
			return nil, fmt.Errorf("event file: truncated record at byte %d", off)
		}
		data := b[off+12 : off+12+int(n)]
		if binary.LittleEndian.Uint32(b[off+12+int(n):]) != MaskedCRC(data) {
			return nil, fmt.Errorf("event file: bad payload checksum at byte %d", off)
		}
		s, ok, err := parseEvent(data)
		if err != nil {
			return nil, fmt.Errorf("event file: record at byte %d: %v", off, err)
		}
		if ok {
			out = append(out, s)
		}
		off += 16 + int(n)
	}
	return out, nil
}

// parseEvent reads the fields this package writes; ok is false for the
// file-version event.
func parseEvent(b []byte) (s Scalar, ok bool, err error) {
	err = eachField(b, func(num, wire int, u uint64, v []byte) error {
		switch {
		case num == eventWallTime && wire == wireFixed64:
			s.Wall = math.Float64frombits(u)
		case num == eventStep && wire == wireVarint:
			s.Step = int64(u)
		case num == eventSummary && wire == wireBytes:
			ok = true
			return eachField(v, func(num, wire int, _ uint64, val []byte) error {
				if num != summaryValue || wire != wireBytes {
					return nil
				}
				return eachField(val, func(num, wire int, u uint64, v []byte) error {
					switch {
					case num == valueTag && wire == wireBytes:
						s.Tag = string(v)
					case num == valueSimple && wire == wireFixed32:
						s.Value = math.Float32frombits(uint32(u))
					}
					return nil
				})
			})
		}
		return nil
	})
	return s, ok, err
}

func eachField(b []byte, f func(num, wire int, u uint64, v []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return fmt.Errorf("bad field key")
		}
		b = b[n:]
		num, wire := int(key>>3), int(key&7)
		var u uint64
		var v []byte
		switch wire {
		case wireVarint:
			if u, n = binary.Uvarint(b); n <= 0 {
				return fmt.Errorf("bad varint")
			}
			b = b[n:]
		case wireFixed64:
			if len(b) < 8 {
				return fmt.Errorf("truncated fixed64")
			}
			u, b = binary.LittleEndian.Uint64(b), b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return fmt.Errorf("truncated fixed32")
			}
			u, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case wireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("bad length")
			}
			v, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("unsupported wire type %d", wire)
		}
		if err := f(num, wire, u, v); err != nil {
			return err
		}
	}
	return nil
}
