package run

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// Internal files of a run directory.
const (
	scratchDir = rundir.ScratchDir
	lockFile   = rundir.LockFile
)

// marshalJSON is the JSON of every file the runner writes: indented, with
// a final newline.
func marshalJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// encodeTensors returns host tensors as a safetensors file.
func encodeTensors(ts []method.HostTensor, meta map[string]string) ([]byte, error) {
	st := make([]safetensors.Tensor, len(ts))
	for i, t := range ts {
		st[i] = safetensors.FromFloat32(t.Name, t.Shape, t.Data)
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, st, meta); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// outputs writes the run directory's output files (results.json,
// metrics.jsonl and the method's artifacts) and keeps a copy of each for
// the checkpoint, which vouches for them.
type outputs struct {
	dir   string
	files map[string][]byte // by path relative to dir, with forward slashes
}

func (o *outputs) path(rel string) (string, error) {
	if !validRel(rel) {
		return "", fmt.Errorf("output file %q is not a path inside the run directory", rel)
	}
	p := filepath.Join(o.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, nil
}

// write replaces the file rel atomically with b.
func (o *outputs) write(rel string, b []byte) error {
	p, err := o.path(rel)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, b); err != nil {
		return err
	}
	o.files[rel] = b
	return nil
}

// append appends b to the file rel.
func (o *outputs) append(rel string, b []byte) error {
	p, err := o.path(rel)
	if err != nil {
		return err
	}
	if err := atomicfile.Append(p, b); err != nil {
		return err
	}
	// append never changes the bytes a checkpoint already took.
	o.files[rel] = append(o.files[rel], b...)
	return nil
}

// restore makes the directory's outputs those of files (a checkpoint's
// copies): a file that is missing or differs is rewritten; metrics.jsonl
// is cut back to its copy's length when it only has lines after it; a
// stored prompt the checkpoint does not know (written by a task that did
// not finish) is removed. It returns the files it rewrote.
func (o *outputs) restore(files map[string][]byte) ([]string, error) {
	o.files = map[string][]byte{}
	names := make([]string, 0, len(files))
	for rel := range files {
		names = append(names, rel)
	}
	sort.Strings(names)
	var restored []string
	for _, rel := range names {
		want := files[rel]
		p, err := o.path(rel)
		if err != nil {
			return nil, err
		}
		got, err := limitio.ReadFile(p, int64(len(want))+1<<30, "an output file")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		switch {
		case bytes.Equal(got, want):
		case rel == rundir.MetricsFile && len(got) > len(want) && bytes.Equal(got[:len(want)], want):
			// Lines of epochs after the checkpoint, to be run again.
			if err := os.Truncate(p, int64(len(want))); err != nil {
				return nil, err
			}
		default:
			if err := atomicfile.WriteFile(p, want); err != nil {
				return nil, err
			}
			restored = append(restored, rel)
		}
		o.files[rel] = want
	}
	if _, ok := files[rundir.MetricsFile]; !ok {
		if err := os.Truncate(filepath.Join(o.dir, rundir.MetricsFile), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	entries, err := os.ReadDir(filepath.Join(o.dir, rundir.PromptsDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		rel := rundir.PromptsDir + "/" + e.Name()
		if _, ok := files[rel]; !ok && !e.IsDir() {
			if err := os.Remove(filepath.Join(o.dir, rundir.PromptsDir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return restored, nil
}

// dirStore writes method artifacts into the run directory. It refuses
// values that are not finite: a run whose parameters diverged stops
// instead of storing them.
type dirStore struct{ out *outputs }

func (s dirStore) WriteTensors(rel string, ts []method.HostTensor, meta map[string]string) error {
	for _, t := range ts {
		if i, ok := firstNonFinite(t.Data); ok {
			return fmt.Errorf("%s: tensor %s holds %v at index %d: not storing a non-finite value", rel, t.Name, t.Data[i], i)
		}
	}
	b, err := encodeTensors(ts, meta)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return s.out.write(rel, b)
}

func (s dirStore) WriteJSON(rel string, v any) error {
	b, err := marshalJSON(v)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return s.out.write(rel, b)
}

// firstNonFinite returns the index of the first NaN or infinite value.
func firstNonFinite(v []float32) (int, bool) {
	for i, x := range v {
		if x != x || math.IsInf(float64(x), 0) {
			return i, true
		}
	}
	return 0, false
}

// lockDir takes an exclusive lock on the run directory so that two
// processes never write one run; the lock ends with the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	// A reader (sweep status) probes the lock with a shared lock for a
	// moment; a busy lock is tried again for a second before it counts as
	// another writer.
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	for i := 0; i < 20 && errors.Is(err, syscall.EWOULDBLOCK); i++ {
		time.Sleep(50 * time.Millisecond)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run directory %s is in use by another shlpt-vk process", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f, nil
}

// dirKind is what a run directory path holds before a run starts.
type dirKind int

const (
	dirNew   dirKind = iota // absent or empty: a new run starts there
	dirRun                  // holds config.json: a run to resume
	dirOther                // holds files but no config.json
)

// inspectDir says what dir holds.
func inspectDir(dir string) (dirKind, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dirNew, nil
	}
	if err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return dirNew, nil
	}
	if _, err := os.Stat(filepath.Join(dir, rundir.ConfigFile)); err == nil {
		return dirRun, nil
	}
	return dirOther, nil
}

// creatingPrefix starts the name of the temporary folder a new run
// directory is built in, beside it: ".<name>.creating-".
func creatingPrefix(dir string) string {
	return "." + filepath.Base(dir) + ".creating-"
}

// createDirWith creates dir atomically with the file name in it: the
// folder is built under a temporary name beside dir and renamed once the
// file is durable, so that an interrupted start leaves either nothing or a
// folder that can be resumed (a run directory with its config.json).
// Temporary folders left by earlier interrupted starts are removed first.
// dir may exist if it is empty.
func createDirWith(dir, name string, content []byte) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if err := removeLeftovers(parent, creatingPrefix(dir)); err != nil {
		return err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := filepath.Join(parent, creatingPrefix(dir)+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, name), content); err != nil {
		return fail(err)
	}
	// Renaming onto an existing empty folder replaces it; onto one that is
	// not empty (another process got there first) it fails.
	if err := atomicfile.Rename(tmp, dir); err != nil {
		return fail(fmt.Errorf("creating %s: %w", dir, err))
	}
	return nil
}

// removeLeftovers removes the entries of dir whose names begin with
// prefix (temporary files and folders of interrupted writes).
func removeLeftovers(dir, prefix string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeTempFiles removes the temporary files that atomic writes
// interrupted by a crash leave (".<name>.tmp-*") in the run directory and
// its subfolders; the caller holds the run's lock.
func removeTempFiles(dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && d.IsDir() && d.Name() == scratchDir {
			return filepath.SkipDir
		}
		if !d.IsDir() && atomicfile.IsTemp(d.Name()) {
			return os.Remove(path)
		}
		return nil
	})
}

// firstDifference names the first setting (in name order, nested settings
// as a.b) whose values differ between two JSON objects, or "" when none
// does.
func firstDifference(a, b map[string]any, prefix string) string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		va, vb := a[k], b[k]
		ma, okA := va.(map[string]any)
		mb, okB := vb.(map[string]any)
		if okA && okB {
			if d := firstDifference(ma, mb, prefix+k+"."); d != "" {
				return d
			}
			continue
		}
		if jsonString(va) != jsonString(vb) {
			return fmt.Sprintf("setting %s%s is %s in the run directory but %s now", prefix, k, jsonString(va), jsonString(vb))
		}
	}
	return ""
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// settingsMap is a configuration as the JSON object config.json holds.
func settingsMap(c *rundir.Config) map[string]any {
	b, _ := json.Marshal(c)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// sameRun explains how a run about to start differs from the run stored
// in a directory (nil: the same settings on the same model and data).
func sameRun(stored, now *rundir.Info) error {
	if d := firstDifference(settingsMap(&stored.Settings), settingsMap(&now.Settings), ""); d != "" {
		return errors.New(d)
	}
	if stored.ModelSHA256 != now.ModelSHA256 {
		return fmt.Errorf("the model files in %s changed since the run began", now.Settings.Model)
	}
	tasks := make([]string, 0, len(stored.DataSHA256))
	for task := range stored.DataSHA256 {
		tasks = append(tasks, task)
	}
	sort.Strings(tasks)
	for _, task := range tasks {
		if now.DataSHA256[task] != stored.DataSHA256[task] {
			return fmt.Errorf("the data files of task %s changed since the run began", task)
		}
	}
	return nil
}
