package tasks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// row is one record as a reader found it, before templating.
type row struct {
	line    int
	fields  map[string]string // values as the reference prints them
	label   string            // the class as written; unused for QA
	answers []string          // QA: gold answers; empty when unanswerable
	group   string            // MultiRC: question id; QA: question id
	passage int               // MultiRC: rows of one passage share it
}

// reader streams the rows of one file to emit. It returns an error for a
// malformed file; malformed rows go through c.
type reader func(r io.Reader, t *Task, c *collector, emit func(row) error) error

func readerFor(f Format) reader {
	switch f {
	case ZhangCSV:
		return readZhangCSV
	case GLUETSV:
		return readGLUETSV
	case SuperGLUEJSONL:
		return readSuperGLUE
	case IMDBJSON, OLoRAJSON:
		return readJSONList
	case SQuADJSON:
		return readSQuAD
	case LFPT5Text:
		return readLFPT5
	}
	return nil
}

// CanRead reports whether files of format f can hold task t, with a
// message saying which formats can when they cannot.
func (t *Task) CanRead(f Format) error {
	if readerFor(f) == nil {
		_, err := ParseFormat(string(f))
		return err
	}
	ok := f == t.Format || (f.foreign() && !t.QA)
	if ok {
		return nil
	}
	also := ""
	if !t.QA {
		also = fmt.Sprintf(" (or %s, %s)", OLoRAJSON, LFPT5Text)
	}
	return fmt.Errorf("task %s cannot be read from %s files: expected %s%s", t.Name, f, t.Format, also)
}

// Limits on what the readers accept, so that a file that never ends (a
// device such as /dev/zero) or one far beyond any task file is an error
// naming it rather than a read that grows until memory runs out.
const (
	// MaxFileSize bounds a task file (the largest of the reference's, the
	// full Amazon reviews train.csv, is 1.6 GB).
	MaxFileSize = 4 << 30
	// MaxLineSize bounds one line of a line-based format (zhang-csv,
	// glue-tsv, superglue-jsonl, lfpt5-txt); MultiRC's longest is 0.1 MB.
	MaxLineSize = 64 << 20
	// MaxDocumentSize bounds a file that is read whole: the JSON formats
	// (imdb-json, olora-json, squad-json) and .npy row filters.
	MaxDocumentSize = 1 << 30
)

// limits are the bounds a read applies; tests lower them.
type limits struct {
	file, line, document int64
}

var defaultLimits = limits{file: MaxFileSize, line: MaxLineSize, document: MaxDocumentSize}

// wholeFile reports whether files of format f are read into memory whole.
func (f Format) wholeFile() bool {
	return f == IMDBJSON || f == OLoRAJSON || f == SQuADJSON
}

// ReadFile reads the examples of task t from a file of format f. A path
// that is not a regular file (a folder, a device such as /dev/zero, a named
// pipe), or a file beyond MaxFileSize (MaxDocumentSize for the formats read
// whole), is an error naming it.
func ReadFile(t *Task, f Format, path string, opts ReadOptions) ([]Example, *FileReport, error) {
	return readFile(t, f, path, opts, defaultLimits)
}

func readFile(t *Task, f Format, path string, opts ReadOptions, lim limits) ([]Example, *FileReport, error) {
	if err := t.CanRead(f); err != nil {
		return nil, nil, err
	}
	fh, st, err := limitio.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	defer fh.Close()
	if limit, what := lim.forFormat(f); st.Size() > limit {
		return nil, nil, fmt.Errorf("task %s: %w", t.Name, &limitio.TooLargeError{Name: path, Size: st.Size(), Limit: limit, What: what})
	}
	return read(t, f, path, bufio.NewReaderSize(fh, 1<<16), opts, lim)
}

// forFormat returns the size limit of a file of format f and what it is.
func (l limits) forFormat(f Format) (int64, string) {
	if f.wholeFile() {
		return l.document, fmt.Sprintf("a %s task file", f)
	}
	return l.file, "a task file"
}

// Read reads the examples of task t from r, which holds a file of format f;
// name is used in messages. Malformed rows are errors of type *RowError
// unless opts.SkipMalformed is set. More than MaxFileSize bytes
// (MaxDocumentSize for the formats read whole), or a line longer than
// MaxLineSize in a line-based format, is an error.
func Read(t *Task, f Format, name string, r io.Reader, opts ReadOptions) ([]Example, *FileReport, error) {
	return read(t, f, name, r, opts, defaultLimits)
}

func read(t *Task, f Format, name string, r io.Reader, opts ReadOptions, lim limits) ([]Example, *FileReport, error) {
	if err := t.CanRead(f); err != nil {
		return nil, nil, err
	}
	limit, what := lim.forFormat(f)
	r = limitio.Reader(r, limit, "", what)
	if !f.wholeFile() {
		r = limitio.Lines(r, lim.line)
	}
	rep := &FileReport{File: name, PerClass: make([]int, max(len(t.Labels), 2))}
	if !t.QA {
		rep.PerClass = rep.PerClass[:len(t.Labels)]
	}
	c := &collector{file: name, skip: opts.SkipMalformed, report: rep}
	b := &builder{t: t, f: f, opts: opts, c: c, lastPassage: -1}
	if err := readerFor(f)(r, t, c, b.add); err != nil {
		var re *RowError
		if errors.As(err, &re) {
			return nil, rep, err
		}
		return nil, rep, fmt.Errorf("%s: %w", name, err)
	}
	rep.Examples = len(b.out)
	return b.out, rep, nil
}

// builder turns rows into examples.
type builder struct {
	t    *Task
	f    Format
	opts ReadOptions
	c    *collector
	out  []Example

	acc         string // MultiRC accumulation (reference behaviour)
	lastPassage int
}

func (b *builder) add(r row) error {
	t := b.t
	b.c.report.Rows++
	if !t.QA && t.dropped(r.label) {
		b.c.report.Dropped++
		return nil
	}
	class, err := t.classOf(r.label, b.f)
	if err != nil {
		return b.c.malformed(r.line, err)
	}
	var input string
	if b.f.foreign() {
		input = r.fields["text"]
	} else if input, err = t.template.apply(r.fields); err != nil {
		return b.c.malformed(r.line, err)
	}
	if b.opts.MultiRCAccumulate && t.Name == "multirc" {
		if r.passage != b.lastPassage {
			b.acc, b.lastPassage = "", r.passage
		}
		b.acc += input
		input = b.acc
	}
	ex := Example{Input: input, Class: class, Group: r.group, Pos: Position{b.c.file, r.line}}
	if t.QA {
		ex.Answers = r.answers
		if len(r.answers) > 0 {
			ex.Target = r.answers[0]
		}
	} else {
		ex.Target = t.Labels[class]
	}
	if !utf8.ValidString(ex.Input) || !utf8.ValidString(ex.Target) {
		return b.c.malformed(r.line, errors.New("text is not valid UTF-8"))
	}
	switch {
	case !t.QA:
		b.c.report.PerClass[class]++
	case len(ex.Answers) > 0:
		b.c.report.PerClass[0]++
	default:
		b.c.report.PerClass[1]++
	}
	b.out = append(b.out, ex)
	return nil
}

// lineReader yields the lines of a file without a length limit, without
// their "\n" or "\r\n", and with a leading UTF-8 byte-order mark removed.
type lineReader struct {
	r    *bufio.Reader
	line int
}

func newLineReader(r io.Reader) *lineReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, bom) {
		br.Discard(3)
	}
	return &lineReader{r: br}
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// next returns the next line and its 1-based number, or io.EOF.
func (l *lineReader) next() ([]byte, int, error) {
	b, err := l.r.ReadBytes('\n')
	if len(b) == 0 && err != nil {
		return nil, 0, err
	}
	if err != nil && err != io.EOF {
		return nil, 0, err
	}
	l.line++
	b = bytes.TrimSuffix(b, []byte{'\n'})
	b = bytes.TrimSuffix(b, []byte{'\r'})
	return b, l.line, nil
}

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte{'\n'}) + 1
}
