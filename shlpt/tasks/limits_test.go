package tasks

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// endless yields pattern over and over, like /dev/zero.
type endless struct {
	pattern []byte
	off     int
}

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.pattern[e.off]
		e.off = (e.off + 1) % len(e.pattern)
	}
	return len(p), nil
}

// TestReadFileNotRegular: a device such as /dev/zero, or a link to one,
// named as a task file is refused at once with an error naming it, for
// every format, instead of a read that grows without end.
func TestReadFileNotRegular(t *testing.T) {
	link := filepath.Join(t.TempDir(), "train.csv")
	if err := os.Symlink("/dev/zero", link); err != nil {
		testenv.Missing(t, "cannot link to /dev/zero: "+err.Error())
	}
	for _, f := range Formats() {
		tk := formatTask(t, f)
		for _, p := range []string{"/dev/zero", link, t.TempDir()} {
			_, _, err := ReadFile(tk, f, p, ReadOptions{SkipMalformed: true})
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%s %s: %v", f, p, err)
			}
		}
	}
}

// formatTask returns a task that files of format f can hold.
func formatTask(t *testing.T, f Format) *Task {
	t.Helper()
	for _, tk := range All() {
		if tk.CanRead(f) == nil {
			return tk
		}
	}
	t.Fatalf("no task reads %s", f)
	return nil
}

// lineFormats gives, for each line-based format, a task, its header and
// a valid row.
var lineFormats = []struct {
	f           Format
	task        string
	header, row string
}{
	{ZhangCSV, "ag", "", "1,t,c\n"},
	{GLUETSV, "rte", "index\tsentence1\tsentence2\tlabel\n", "0\ta\tb\tentailment\n"},
	{SuperGLUEJSONL, "cb", "", `{"premise": "p", "hypothesis": "h", "label": "entailment"}` + "\n"},
	{LFPT5Text, "ag", "", "text\tworld\n"},
}

// TestReadLimits: a file beyond its size limit, a stream that goes on past
// it, and a line beyond the line limit are errors naming the file (and the
// line), with SkipMalformed too.
func TestReadLimits(t *testing.T) {
	lim := limits{file: 1000, line: 100, document: 500}
	for _, f := range Formats() {
		tk := formatTask(t, f)
		limit := lim.file
		if f.wholeFile() {
			limit = lim.document
		}
		for _, skip := range []bool{false, true} {
			opts := ReadOptions{SkipMalformed: skip}
			// A regular file one byte beyond the limit.
			p := filepath.Join(t.TempDir(), "big")
			if err := os.WriteFile(p, bytes.Repeat([]byte("\n"), int(limit)+1), 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := readFile(tk, f, p, opts, lim)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "larger than the") {
				t.Errorf("%s: file over the limit: %v", f, err)
			}
			if f.wholeFile() {
				// A document that never ends.
				_, _, err = read(tk, f, "stream", &endless{pattern: []byte("[\n")}, opts, lim)
				if err == nil || !strings.HasPrefix(err.Error(), "stream: more than 500 bytes") {
					t.Errorf("%s: endless stream: %v", f, err)
				}
			}
		}
	}
	for _, lf := range lineFormats {
		tk, err := Lookup(lf.task)
		if err != nil {
			t.Fatal(err)
		}
		for _, skip := range []bool{false, true} {
			opts := ReadOptions{SkipMalformed: skip}
			// Valid rows that never end.
			in := io.MultiReader(strings.NewReader(lf.header), &endless{pattern: []byte(lf.row)})
			_, _, err := read(tk, lf.f, "stream", in, opts, lim)
			if err == nil || !strings.HasPrefix(err.Error(), "stream: more than 1000 bytes") {
				t.Errorf("%s: endless stream: %v", lf.f, err)
			}
			// A line that never ends, after a valid row.
			prefix := lf.header + lf.row
			in = io.MultiReader(strings.NewReader(prefix), &endless{pattern: []byte("x")})
			_, _, err = read(tk, lf.f, "stream", in, opts, lim)
			want := fmt.Sprintf("stream: line %d is longer than 100 bytes", strings.Count(prefix, "\n")+1)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%s: endless line: %v; want %q", lf.f, err, want)
			}
			// Within the limits, the rows are read.
			exs, _, err := read(tk, lf.f, "stream", strings.NewReader(prefix+lf.row), opts, lim)
			if err != nil || len(exs) != 2 {
				t.Errorf("%s: two rows: %d examples, %v", lf.f, len(exs), err)
			}
		}
	}
}

func TestNPYLimit(t *testing.T) {
	data := npy("<i8", "(3,)", 0, 1, 2)
	if _, err := readNPYIntsLimited(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	if _, err := readNPYIntsLimited(bytes.NewReader(data), int64(len(data))-1); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("over the limit: %v", err)
	}
	link := filepath.Join(t.TempDir(), "rows.npy")
	if err := os.Symlink("/dev/zero", link); err != nil {
		testenv.Missing(t, "cannot link to /dev/zero: "+err.Error())
	}
	if _, err := keepRows(nil, link); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero as row filter: %v", err)
	}
}
