package tasks

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// npy encodes ids as a version-1 .npy file of the given element type.
func npy(descr string, shape string, ids ...int64) []byte {
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	for _, id := range ids {
		switch descr {
		case "<i4", "<u4":
			binary.Write(&b, binary.LittleEndian, int32(id))
		default:
			binary.Write(&b, binary.LittleEndian, id)
		}
	}
	return b.Bytes()
}

func TestReadNPYInts(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want []int
		err  string
	}{
		{"int64", npy("<i8", "(3,)", 4, 0, 2), []int{4, 0, 2}, ""},
		{"int32", npy("<i4", "(2,)", 7, 1), []int{7, 1}, ""},
		{"uint64", npy("<u8", "(1,)", 5), []int{5}, ""},
		{"empty", npy("<i8", "(0,)"), []int{}, ""},
		{"negative", npy("<i8", "(1,)", -1), nil, "not a row index"},
		{"float", npy("<f8", "(1,)", 1), nil, `element type "<f8"`},
		{"two-dimensional", npy("<i8", "(1, 1)", 1), nil, "one-dimensional"},
		{"short data", npy("<i8", "(2,)", 1), nil, "8 bytes of data for 2 elements"},
		{"not npy", []byte("PK\x03\x04 zip"), nil, "not a NumPy .npy file"},
		{"truncated header", []byte("\x93NUMPY\x01\x00\xff\x00{'descr'"), nil, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readNPYInts(bytes.NewReader(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// The Yahoo row filter keeps the listed rows, in the listed order.
func TestLoadRowFilter(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var csv strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&csv, "%d,\"t%d\",\"c\",\"a\"\n", i%10+1, i)
	}
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "yahoo_answers_topics"), 0o755)
	os.MkdirAll(filepath.Join(root, "good_id_yahoo"), 0o755)
	write("root/yahoo_answers_topics/train.csv", []byte(csv.String()))
	write("root/yahoo_answers_topics/test.csv", []byte(csv.String()))
	tk, _ := Lookup("yahoo")

	d, err := Load(tk, Layout(root, tk), 1, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Notes) != 1 || len(d.Test) != 20 {
		t.Errorf("without filter: notes %q, %d test examples", d.Notes, len(d.Test))
	}

	// Keep rows 0..9 of train and a reordered set of test rows, one per class each.
	write("root/good_id_yahoo/good_id_yahoo_train2.npy", npy("<i8", "(10,)", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
	write("root/good_id_yahoo/good_id_yahoo_test2.npy", npy("<i8", "(10,)", 19, 10, 11, 12, 13, 14, 15, 16, 17, 8))
	files := Layout(root, tk)
	if files.TrainRows == "" || files.TestRows == "" {
		t.Fatalf("layout did not find the row filters: %+v", files)
	}
	d, err = Load(tk, files, 1, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Notes) != 0 || len(d.Train)+len(d.Valid) != 10 || len(d.Test) != 10 {
		t.Errorf("with filter: notes %q, %d+%d train+valid, %d test", d.Notes, len(d.Train), len(d.Valid), len(d.Test))
	}
	for _, e := range d.Test {
		if strings.Contains(e.Input, "title: t18 ") || strings.Contains(e.Input, "title: t0 ") {
			t.Errorf("test keeps a filtered row: %q", e.Input)
		}
	}
	if r := d.Reports[0]; r.RowFilter != files.TrainRows || r.Examples != 10 || !strings.Contains(r.String(), "after row filter") {
		t.Errorf("report %v", r)
	}

	files.TestRows = write("bad.npy", npy("<i8", "(1,)", 20))
	if _, err := Load(tk, files, 1, DefaultConfig()); err == nil || !strings.Contains(err.Error(), "row index 20 at position 0, but the file has 20 rows") {
		t.Errorf("out-of-range index: %v", err)
	}
}

func FuzzNPY(f *testing.F) {
	f.Add(npy("<i8", "(3,)", 4, 0, 2))
	f.Add(npy("<i4", "(2,)", 7, 1))
	f.Add(npy("<u8", "(1,)", 5))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'descr': '<i8'}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := readNPYInts(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, id := range ids {
			if id < 0 {
				t.Fatalf("negative index %d", id)
			}
		}
	})
}
