package run

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Logger receives what the runner measures, once, as it happens: every
// training step, every epoch and every finished stage. Sinks (metrics.csv,
// TensorBoard) implement it; they never reach back into the runner.
// metrics.jsonl stays the runner's own record, which the checkpoint
// guards; the sinks are views of the same numbers for other tools.
type Logger interface {
	Step(s StepLog) error
	Epoch(e EpochLog) error
	Stage(s StageLog) error
	// Sync makes everything logged so far durable and returns the length
	// of each file the sink writes (by path relative to the run
	// directory), which the checkpoint records: a resumed run cuts the
	// files back to these lengths, so that no step is logged twice.
	Sync() (map[string]int64, error)
	Close() error
}

// StepLog is one training step.
type StepLog struct {
	Task       string
	TaskIndex  int
	Epoch      int // 0-based
	Step       int // 1-based within the epoch
	GlobalStep int // 1-based over the whole run
	Loss       float64
	Parts      map[string]float64
	TokensPerS float64 // of the epoch so far
}

// EpochLog is a finished epoch: its metrics.jsonl line and the run's
// step count at its end.
type EpochLog struct {
	Line       rundir.EpochLine
	GlobalStep int
	// Earlier names the tasks before this one, the order of Line.Alpha.
	Earlier []string
}

// StageLog is a finished stage: the tasks scored after it, in row Row of
// the results' matrices.
type StageLog struct {
	Row, GlobalStep int
	Results         *rundir.Results
	// Scored are the indices of the tasks scored after the stage.
	Scored []int
}

// openLoggers opens the run's sinks at the lengths a checkpoint recorded
// (lens nil: a new run, every file empty).
func openLoggers(dir string, lens map[string]int64, logf func(string, ...any)) (*logSet, error) {
	s := &logSet{}
	for _, open := range []func(string, func(string) (*logFile, error)) (Logger, error){openCSVLog, openTBLog} {
		l, err := open(dir, func(rel string) (*logFile, error) {
			n, ok := lens[rel]
			if lens != nil && !ok {
				logf("%s: the checkpoint predates this log, which starts again from here", rel)
			}
			return openLogFile(dir, rel, n, logf)
		})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.sinks = append(s.sinks, l)
	}
	return s, nil
}

// logSet sends every record to each of its sinks.
type logSet struct{ sinks []Logger }

func (s *logSet) each(f func(Logger) error) error {
	if s == nil {
		// Not open yet: the first checkpoint is written before any log.
		return nil
	}
	var errs []error
	for _, l := range s.sinks {
		errs = append(errs, f(l))
	}
	return errors.Join(errs...)
}

func (s *logSet) Step(r StepLog) error   { return s.each(func(l Logger) error { return l.Step(r) }) }
func (s *logSet) Epoch(r EpochLog) error { return s.each(func(l Logger) error { return l.Epoch(r) }) }
func (s *logSet) Stage(r StageLog) error { return s.each(func(l Logger) error { return l.Stage(r) }) }
func (s *logSet) Close() error           { return s.each(func(l Logger) error { return l.Close() }) }

func (s *logSet) Sync() (map[string]int64, error) {
	out := map[string]int64{}
	err := s.each(func(l Logger) error {
		m, err := l.Sync()
		for k, v := range m {
			out[k] = v
		}
		return err
	})
	return out, err
}

// logFile is an append-only log in the run directory, buffered between
// syncs.
type logFile struct {
	rel string
	f   *os.File
	w   *bufio.Writer
	// empty says the file held nothing when opened (a header is due).
	empty bool
}

// openLogFile opens dir/rel for appending after cutting it to n bytes
// (creating it, and its folder, when absent).
func openLogFile(dir, rel string, n int64, logf func(string, ...any)) (*logFile, error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() < n {
		// A log cut short or removed since the checkpoint cannot be
		// restored (the checkpoint keeps no copy of it): it starts again.
		logf("%s is shorter (%d bytes) than the checkpoint recorded (%d): it starts again from here", path, st.Size(), n)
		n = 0
	}
	if err == nil {
		err = f.Truncate(n)
	}
	if err == nil {
		_, err = f.Seek(n, 0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logFile{rel: rel, f: f, w: bufio.NewWriterSize(f, 64<<10), empty: n == 0}, nil
}

func (l *logFile) Write(b []byte) (int, error) { return l.w.Write(b) }

// sync flushes and syncs the file and returns its length.
func (l *logFile) sync() (int64, error) {
	if err := l.w.Flush(); err != nil {
		return 0, fmt.Errorf("%s: %w", l.rel, err)
	}
	if err := l.f.Sync(); err != nil {
		return 0, fmt.Errorf("%s: %w", l.rel, err)
	}
	return l.f.Seek(0, 1)
}

func (l *logFile) close() error {
	err := l.w.Flush()
	return errors.Join(err, l.f.Close())
}

// openLogs opens the sinks where the checkpoint ck (nil: a new run) left
// them and counts the training steps run so far.
func (r *runner) openLogs(ck *checkpoint) error {
	var lens map[string]int64
	if ck != nil {
		lens = ck.Logs
		if lens == nil {
			lens = map[string]int64{}
		}
		n, err := stepsLogged(r.dir)
		if err != nil {
			return err
		}
		r.globalStep = n
		if ck.Started {
			r.globalStep += ck.Partial.Steps
		}
	}
	var err error
	r.logs, err = openLoggers(r.dir, lens, r.rep.Logf)
	return err
}

// similarities returns the method's weights of the earlier tasks now
// (method.Similarities), or nil.
func (r *runner) similarities() ([]float64, error) {
	s, ok := r.meth.(method.Similarities)
	if !ok {
		return nil, nil
	}
	return s.TaskSimilarity()
}

// stepsLogged counts the training steps of the epochs in metrics.jsonl.
func stepsLogged(dir string) (int, error) {
	lines, err := rundir.ReadMetrics(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // stopped before its first epoch ended
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range lines {
		n += l.Steps
	}
	return n, nil
}
