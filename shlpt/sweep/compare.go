package sweep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Fields that describe an execution rather than its results — wall-clock
// times, and the device memory peak, which depends on what the process did
// before (a resumed run loads its model within the epoch it resumes) — are
// left out when runs are compared.
var (
	// clockKeys are removed at any depth of results.json, metrics.jsonl
	// and config.json.
	clockKeys = map[string]bool{"timing": true, "seconds": true, "tokens_per_s": true, "train_seconds": true,
		"eval_seconds": true, "created": true, "peak_device_bytes": true}
	// notCompared are files of a run directory that hold the execution,
	// not the results: the lock, the checkpoint (rewritten by every
	// session, with its timing), scratch space, and the logs for other
	// tools (metrics.csv, eval.csv, tb/), which repeat metrics.jsonl with
	// times and wall-clock stamps in every row.
	notCompared = map[string]bool{rundir.LockFile: true, rundir.CheckpointFile: true, rundir.ScratchDir: true,
		rundir.MetricsCSVFile: true, rundir.EvalCSVFile: true, rundir.TBDir: true}
)

// CompareRuns reports the first difference between two run directories:
// every file is compared byte for byte, except that results.json,
// metrics.jsonl and config.json are compared without their wall-clock
// fields and memory peaks, and the lock, checkpoint, scratch space and
// the logs for other tools are skipped. nil means the runs' results are
// identical.
func CompareRuns(a, b string) error {
	fa, err := runFiles(a)
	if err != nil {
		return err
	}
	fb, err := runFiles(b)
	if err != nil {
		return err
	}
	for _, name := range union(fa, fb) {
		if !fa[name] || !fb[name] {
			missing := a
			if fa[name] {
				missing = b
			}
			return fmt.Errorf("%s: no %s", missing, name)
		}
		ba, err := comparable(filepath.Join(a, name))
		if err != nil {
			return err
		}
		bb, err := comparable(filepath.Join(b, name))
		if err != nil {
			return err
		}
		if !bytes.Equal(ba, bb) {
			return fmt.Errorf("%s differs between %s and %s", name, a, b)
		}
	}
	return nil
}

// ComparePlans compares the runs of two plans with the same runs, run by
// run; it returns one error per run that differs or is not complete in
// both.
func ComparePlans(a, b *Plan) []error {
	if a.SHA256 != b.SHA256 {
		return []error{fmt.Errorf("%s and %s are different plans (%s)", a.Dir, b.Dir, a.difference(b))}
	}
	var errs []error
	for i := range a.Runs {
		for _, p := range []*Plan{a, b} {
			if st := p.Status(i); st.State != Complete {
				errs = append(errs, fmt.Errorf("run %d (%s) is %s in %s", i, p.Runs[i].Dir, st.State, p.Dir))
			}
		}
		if err := CompareRuns(a.RunDir(i), b.RunDir(i)); err != nil {
			errs = append(errs, fmt.Errorf("run %d: %w", i, err))
		}
	}
	return errs
}

// runFiles lists the compared files of a run directory (slash paths).
func runFiles(dir string) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if notCompared[rel] || strings.HasPrefix(d.Name(), ".") && d.Name() != "." {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			out[rel] = true
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no run directory", dir)
	}
	return out, err
}

func union(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if !a[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// comparable returns a file's bytes, JSON files without wall-clock fields
// (re-encoded, one value per line for metrics.jsonl).
func comparable(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch filepath.Base(path) {
	case rundir.ResultsFile, rundir.ConfigFile:
		return withoutClock(b, path)
	case rundir.MetricsFile:
		var out []byte
		for n, line := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			c, err := withoutClock(line, fmt.Sprintf("%s:%d", path, n+1))
			if err != nil {
				return nil, err
			}
			out = append(append(out, c...), '\n')
		}
		return out, nil
	}
	return b, nil
}

func withoutClock(b []byte, where string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers keep their exact text
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: %v", where, err)
	}
	return json.Marshal(dropKeys(v))
}

func dropKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if clockKeys[k] {
				delete(t, k)
			} else {
				t[k] = dropKeys(x)
			}
		}
	case []any:
		for i := range t {
			t[i] = dropKeys(t[i])
		}
	}
	return v
}
