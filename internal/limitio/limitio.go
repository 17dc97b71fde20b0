// Package limitio reads files and streams with a bound on their size, so
// that a file that is too large, or a device such as /dev/zero named where a
// file is expected, is an error naming it instead of a read that grows
// without end.
package limitio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// TooLargeError reports a file or stream beyond its limit.
type TooLargeError struct {
	// Name is the file or stream; empty when the caller names it.
	Name string
	// Size is the file's size, or -1 for a stream that went on past Limit.
	Size  int64
	Limit int64
	// What says what the limit is for ("a config.json", "a task file").
	What string
}

func (e *TooLargeError) Error() string {
	s := ""
	if e.Name != "" {
		s = e.Name + ": "
	}
	if e.Size >= 0 {
		s += fmt.Sprintf("%s (%d bytes)", FormatSize(e.Size), e.Size)
	} else {
		s += "more than " + FormatSize(e.Limit)
	}
	return s + fmt.Sprintf(", larger than the %s allowed for %s", FormatSize(e.Limit), e.What)
}

// NotRegularError reports a folder, device, named pipe or socket where a
// regular file is expected.
type NotRegularError struct {
	Name string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	kind := "not a regular file"
	switch t := e.Mode.Type(); {
	case t&fs.ModeDir != 0:
		kind = "a folder"
	case t&fs.ModeCharDevice != 0:
		kind = "a character device"
	case t&fs.ModeDevice != 0:
		kind = "a device"
	case t&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case t&fs.ModeSocket != 0:
		kind = "a socket"
	}
	if kind == "not a regular file" {
		return e.Name + ": not a regular file"
	}
	return fmt.Sprintf("%s: is %s, not a regular file", e.Name, kind)
}

// Open opens the regular file at path (following symbolic links) for
// reading and returns it with its information. A folder, device, named pipe
// or socket is a *NotRegularError; the path is checked before it is opened,
// so that opening a named pipe cannot block. Errors from the file system
// wrap the os errors (errors.Is(err, fs.ErrNotExist) works).
func Open(path string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, nil, &NotRegularError{Name: path, Mode: st.Mode()}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	// The path may have changed between Stat and Open.
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, &NotRegularError{Name: path, Mode: st.Mode()}
	}
	return f, st, nil
}

// ReadFile reads the regular file at path. A file of more than limit bytes
// is a *TooLargeError naming it and saying what the limit is for (what:
// "a config.json"); a file that grows past the limit while it is read is
// one too.
func ReadFile(path string, limit int64, what string) ([]byte, error) {
	f, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st.Size() > limit {
		return nil, &TooLargeError{Name: path, Size: st.Size(), Limit: limit, What: what}
	}
	data := make([]byte, 0, st.Size()+1)
	data, err = readAll(io.LimitReader(f, limit+1), data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Name: path, Size: -1, Limit: limit, What: what}
	}
	return data, nil
}

// readAll appends r's bytes to data until io.EOF.
func readAll(r io.Reader, data []byte) ([]byte, error) {
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
	}
}

// ReadAll reads r to its end; more than limit bytes is a *TooLargeError
// for name (which may be empty when the caller names the stream).
func ReadAll(r io.Reader, limit int64, name, what string) ([]byte, error) {
	data, err := readAll(io.LimitReader(r, limit+1), nil)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Name: name, Size: -1, Limit: limit, What: what}
	}
	return data, nil
}

// Reader returns a reader of r that fails with a *TooLargeError (for name,
// which may be empty) once r yields more than limit bytes.
func Reader(r io.Reader, limit int64, name, what string) io.Reader {
	return &limitedReader{r: r, left: limit, limit: limit, name: name, what: what}
}

type limitedReader struct {
	r           io.Reader
	left, limit int64
	name, what  string
	err         error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n = int(l.left)
		l.left = 0
		l.err = &TooLargeError{Name: l.name, Size: -1, Limit: l.limit, What: l.what}
		return n, l.err
	}
	l.left -= int64(n)
	return n, err
}

// LineTooLongError reports a line beyond the limit of a LineReader.
type LineTooLongError struct {
	Line  int // 1-based
	Limit int64
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line %d is longer than %s", e.Line, FormatSize(e.Limit))
}

// Lines returns a reader of r that fails with a *LineTooLongError once a
// line (the bytes between two "\n") reaches more than limit bytes, so that a
// reader that collects lines (bufio.Reader.ReadBytes, encoding/csv) holds at
// most about limit bytes of one.
func Lines(r io.Reader, limit int64) io.Reader {
	return &lineLimiter{r: r, limit: limit, line: 1}
}

type lineLimiter struct {
	r     io.Reader
	limit int64
	cur   int64 // bytes of the current line so far
	line  int
	err   error
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for off := 0; off < n; {
		i := bytes.IndexByte(p[off:n], '\n')
		seg := i
		if i < 0 {
			seg = n - off
		}
		if l.cur+int64(seg) > l.limit {
			l.err = &LineTooLongError{Line: l.line, Limit: l.limit}
			return off + int(l.limit-l.cur), l.err
		}
		if i < 0 {
			l.cur += int64(seg)
			break
		}
		l.line++
		l.cur = 0
		off += i + 1
	}
	return n, err
}

// IsLimit reports whether err comes from a limit of this package: a file
// or stream too large, a line too long, or a file that is not regular.
func IsLimit(err error) bool {
	var tl *TooLargeError
	var ll *LineTooLongError
	var nr *NotRegularError
	return errors.As(err, &tl) || errors.As(err, &ll) || errors.As(err, &nr)
}

// FormatSize prints n bytes in the largest binary unit that divides it
// ("64 MiB"), or with one decimal ("1.5 GiB").
func FormatSize(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}
