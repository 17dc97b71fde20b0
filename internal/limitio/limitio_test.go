package limitio

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.json")
	os.WriteFile(small, []byte("{}"), 0o644)
	if b, err := ReadFile(small, 2, "a test file"); err != nil || string(b) != "{}" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	_, err := ReadFile(small, 1, "a test file")
	var tl *TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), small) || !strings.Contains(err.Error(), "a test file") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "none"), 10, "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	var nr *NotRegularError
	if _, err := ReadFile(dir, 10, "x"); !errors.As(err, &nr) || !strings.Contains(err.Error(), "folder") {
		t.Errorf("folder: %v", err)
	}
	// A link to /dev/zero is refused before anything is read.
	link := filepath.Join(dir, "config.json")
	if err := os.Symlink("/dev/zero", link); err != nil {
		testenv.Missing(t, "cannot link to /dev/zero: "+err.Error())
	}
	if _, err := ReadFile(link, 1<<20, "x"); !errors.As(err, &nr) || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/zero: %v", err)
	}
}

func TestReader(t *testing.T) {
	b, err := io.ReadAll(Reader(strings.NewReader("abcd"), 4, "s", "a test stream"))
	if err != nil || string(b) != "abcd" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	b, err = io.ReadAll(Reader(strings.NewReader("abcde"), 4, "s", "a test stream"))
	var tl *TooLargeError
	if !errors.As(err, &tl) || len(b) != 4 || !strings.Contains(err.Error(), "s: more than 4 bytes") {
		t.Errorf("over the limit: %q, %v", b, err)
	}
	// An endless stream stops at the limit.
	f, err := os.Open("/dev/zero")
	if err == nil {
		defer f.Close()
		if _, err := ReadAll(f, 1<<20, "/dev/zero", "x"); !errors.As(err, &tl) {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	if b, err := ReadAll(strings.NewReader("xy"), 2, "", "x"); err != nil || string(b) != "xy" {
		t.Errorf("ReadAll: %q, %v", b, err)
	}
}

func TestLines(t *testing.T) {
	in := "ab\nabc\nabcd\nab"
	r := bufio.NewReader(Lines(strings.NewReader(in), 3))
	var lines []string
	var err error
	for {
		var b []byte
		b, err = r.ReadBytes('\n')
		if err != nil {
			break
		}
		lines = append(lines, string(bytes.TrimSuffix(b, []byte("\n"))))
	}
	var ll *LineTooLongError
	if !errors.As(err, &ll) || ll.Line != 3 || strings.Join(lines, ",") != "ab,abc" {
		t.Errorf("lines %q, err %v", lines, err)
	}
	if b, err := io.ReadAll(Lines(strings.NewReader(in), 4)); err != nil || string(b) != in {
		t.Errorf("within the limit: %q, %v", b, err)
	}
	// The same, a byte at a time: lines split across reads count whole.
	if b, err := io.ReadAll(Lines(iotest.OneByteReader(strings.NewReader(in)), 4)); err != nil || string(b) != in {
		t.Errorf("within the limit, by bytes: %q, %v", b, err)
	}
	b, err := io.ReadAll(Lines(iotest.OneByteReader(strings.NewReader(in)), 3))
	if !errors.As(err, &ll) || ll.Line != 3 || string(b) != "ab\nabc\nabc" {
		t.Errorf("over the limit, by bytes: %q, %v", b, err)
	}
	b, err = io.ReadAll(Lines(strings.NewReader(in), 3))
	if !errors.As(err, &ll) || string(b) != "ab\nabc\nabc" {
		t.Errorf("over the limit: %q, %v", b, err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{5: "5 bytes", 1024: "1 KiB", 64 << 20: "64 MiB", 3 << 29: "1.5 GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
}
