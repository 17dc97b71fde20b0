package safetensors

import (
	"testing"
)

// FuzzParse checks that no input makes the reader panic, and that whatever it
// accepts can be converted without panicking.
func FuzzParse(f *testing.F) {
	f.Add(rawFile(`{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}`, make([]byte, 4)))
	f.Add(rawFile(`{"__metadata__": {"a": "b"}, "x": {"dtype": "BF16", "shape": [2, 1], "data_offsets": [0, 4]}, "y": {"dtype": "I64", "shape": [], "data_offsets": [4, 12]}}`, make([]byte, 12)))
	f.Add(rawFile(`{"x": {"dtype": "F16", "shape": [3], "data_offsets": [2, 8]}}`, make([]byte, 8)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		for _, name := range file.Names() {
			tt, _ := file.Tensor(name)
			if tt.DType.IsFloat() {
				if v, err := tt.Float32(); err != nil || len(v) != tt.NumElements() {
					t.Fatalf("%s: Float32: %d values, %v", name, len(v), err)
				}
			}
			if tt.DType.IsInt() {
				tt.Int64()
			}
		}
		file.Close()
	})
}
