// Package tfevents writes TensorBoard event files with the standard library:
// TFRecord framing (a length, its masked CRC-32C, the payload, its masked
// CRC-32C) around Event protocol buffers that carry scalar summaries. It
// writes only what TensorBoard's scalar dashboard reads: a file-version
// event first, then one event per scalar.
package tfevents

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"math"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the CRC-32C (Castagnoli) checksum of b.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// MaskedCRC is TFRecord's masked CRC-32C of b: the checksum rotated right
// by 15 bits plus a constant, so that checksums of data holding checksums
// stay well distributed.
func MaskedCRC(b []byte) uint32 {
	c := CRC32C(b)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Record returns data framed as one TFRecord.
func Record(data []byte) []byte {
	out := make([]byte, 12, 12+len(data)+4)
	binary.LittleEndian.PutUint64(out, uint64(len(data)))
	binary.LittleEndian.PutUint32(out[8:], MaskedCRC(out[:8]))
	out = append(out, data...)
	return binary.LittleEndian.AppendUint32(out, MaskedCRC(data))
}

// FileVersion is the first event of every event file.
const FileVersion = "brain.Event:2"

// Protocol buffer wire types and the field numbers of tensorflow.Event,
// Summary and Summary.Value that these files use.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5

	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string
	eventSummary     = 5 // Summary
	summaryValue     = 1 // repeated Value
	valueTag         = 1 // string
	valueSimple      = 2 // float
)

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<3|wire))
}

func appendBytes(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// event encodes an Event with its wall time (seconds since the Unix epoch),
// step and either a file version or a summary.
func event(wall float64, step int64, version string, summary []byte) []byte {
	b := appendTag(nil, eventWallTime, wireFixed64)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(wall))
	if step != 0 {
		b = appendTag(b, eventStep, wireVarint)
		b = binary.AppendUvarint(b, uint64(step))
	}
	if version != "" {
		b = appendBytes(b, eventFileVersion, []byte(version))
	}
	if summary != nil {
		b = appendBytes(b, eventSummary, summary)
	}
	return b
}

// VersionEvent is the file-version event framed as a record.
func VersionEvent(wall float64) []byte { return Record(event(wall, 0, FileVersion, nil)) }

// ScalarEvent is one scalar (tag, step, value) framed as a record.
func ScalarEvent(wall float64, step int64, tag string, value float32) []byte {
	v := appendBytes(nil, valueTag, []byte(tag))
	v = appendTag(v, valueSimple, wireFixed32)
	v = binary.LittleEndian.AppendUint32(v, math.Float32bits(value))
	summary := appendBytes(nil, summaryValue, v)
	return Record(event(wall, step, "", summary))
}

// Writer writes events to w.
type Writer struct {
	w   io.Writer
	err error
}

// NewWriter returns a writer of events to w (which it does not buffer).
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) write(rec []byte) error {
	if w.err == nil {
		_, w.err = w.w.Write(rec)
	}
	return w.err
}

// Version writes the file-version event that begins a file.
func (w *Writer) Version(wall float64) error { return w.write(VersionEvent(wall)) }

// Scalar writes one scalar.
func (w *Writer) Scalar(wall float64, step int64, tag string, value float32) error {
	return w.write(ScalarEvent(wall, step, tag, value))
}

// Err is the first write error.
func (w *Writer) Err() error { return w.err }
