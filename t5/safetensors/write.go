package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
)

// FromFloat32 returns an F32 tensor holding values with the given shape.
func FromFloat32(name string, shape []int, values []float32) Tensor {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: F32, Shape: append([]int{}, shape...), Data: data}
}

// FromInt64 returns an I64 tensor holding values with the given shape.
func FromInt64(name string, shape []int, values []int64) Tensor {
	data := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(data[8*i:], uint64(v))
	}
	return Tensor{Name: name, DType: I64, Shape: append([]int{}, shape...), Data: data}
}

type headerInfo struct {
	DType       DType     `json:"dtype"`
	Shape       []int     `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

// Encode writes tensors and metadata to w in the safetensors format. Data is
// laid out by decreasing element size, then name, and the header is padded to
// a multiple of 8 bytes, so that every tensor is aligned to its element size.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	order := make([]*Tensor, len(tensors))
	seen := map[string]bool{}
	for i := range tensors {
		t := &tensors[i]
		if t.Name == "" || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: invalid tensor name %q", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("safetensors: tensor %q given twice", t.Name)
		}
		seen[t.Name] = true
		if err := t.checkData(); err != nil {
			return err
		}
		order[i] = t
	}
	sort.Slice(order, func(i, j int) bool {
		si, sj := order[i].DType.Size(), order[j].DType.Size()
		if si != sj {
			return si > sj
		}
		return order[i].Name < order[j].Name
	})
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off uint64
	for _, t := range order {
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		n := uint64(len(t.Data))
		header[t.Name] = headerInfo{DType: t.DType, Shape: shape, DataOffsets: [2]uint64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: header: %v", err)
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	for _, t := range order {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// Write writes tensors and metadata to the file at path. It writes a
// temporary file in the same folder and renames it, so that a reader never
// sees a partly written file and a failure leaves any old file in place.
func Write(path string, tensors []Tensor, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("%s: %w", path, err)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := Encode(bw, tensors, metadata); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
