package tasks

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/jsonfile"
)

// TaskFile defines a custom task: a folder holding it and the task's files.
const TaskFile = "task.json"

// customDef is the content of task.json.
type customDef struct {
	// Name is the task's name in sequences and results; it must not be one
	// of the built-in tasks' names.
	Name string `json:"name"`
	// Labels are the label words (class 0, 1, ...), the targets the model
	// generates.
	Labels []string `json:"labels"`
	// TargetLen is the target length in tokens including </s> (default 5).
	TargetLen int `json:"target_len"`
	// Train, Valid and Test are file names in the folder, in LFPT5's
	// "text<TAB>label word" format (the text is the input verbatim).
	// Without Valid, valid examples come from the train file.
	Train string `json:"train"`
	Valid string `json:"valid"`
	Test  string `json:"test"`
}

// LoadCustom reads the custom task defined by dir/task.json: a
// classification task of the user's own, whose files are in LFPT5's text
// format (one "input text<TAB>label word" line per example) in the same
// folder. It returns the task and its files, ready for Load.
func LoadCustom(dir string) (*Task, Files, error) {
	path := filepath.Join(dir, TaskFile)
	var d customDef
	if err := jsonfile.Read(path, 1<<20, "a task.json", &d); err != nil {
		return nil, Files{}, err
	}
	if d.TargetLen == 0 {
		d.TargetLen = 5
	}
	bad := func(format string, args ...any) (*Task, Files, error) {
		return nil, Files{}, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	switch {
	case d.Name == "" || strings.ContainsAny(d.Name, " \t\n,/\\"):
		return bad("name %q must be one word without commas or slashes", d.Name)
	case len(d.Labels) < 2:
		return bad("a task needs at least 2 label words, has %d", len(d.Labels))
	case d.TargetLen < 2 || d.TargetLen > 512:
		return bad("target_len %d must lie between 2 and 512", d.TargetLen)
	case d.Train == "" || d.Test == "":
		return bad("train and test files must be named")
	}
	for _, f := range []struct{ field, name string }{{"train", d.Train}, {"valid", d.Valid}, {"test", d.Test}} {
		if f.name != "" && !filepath.IsLocal(f.name) {
			return bad("%s file %q must be a path inside the task's folder", f.field, f.name)
		}
	}
	if t, err := Lookup(d.Name); err == nil {
		return bad("name %q is the built-in task %s", d.Name, t.Name)
	}
	seen := map[string]bool{}
	for _, l := range d.Labels {
		k := labelKey(l)
		if k == "" || seen[k] {
			return bad("label %q is empty or repeats another (labels are compared ignoring case, spaces, '_' and '-')", l)
		}
		seen[k] = true
	}
	t := &Task{Name: d.Name, Dir: filepath.Base(dir), Format: LFPT5Text, Labels: d.Labels, TargetLen: d.TargetLen}
	f := Files{Format: LFPT5Text, Train: filepath.Join(dir, d.Train), Test: filepath.Join(dir, d.Test)}
	if d.Valid != "" {
		f.Valid = filepath.Join(dir, d.Valid)
	}
	return t, f, nil
}

// Resolve returns a task of a sequence and its files under the data root:
// a built-in task in the SHLPT layout, or a custom task in the folder
// root/name (with a task.json).
func Resolve(root, name string) (*Task, Files, error) {
	t, err := Lookup(name)
	if err == nil {
		return t, Layout(root, t), nil
	}
	if n := strings.TrimSpace(name); n == "" || n == "." || n == ".." || strings.ContainsAny(n, `/\`) {
		return nil, Files{}, fmt.Errorf("task %q: a task is a built-in name or the name of a folder directly under %s, not a path", name, root)
	}
	dir := filepath.Join(root, strings.TrimSpace(name))
	if _, serr := os.Stat(filepath.Join(dir, TaskFile)); serr == nil {
		t, f, err := LoadCustom(dir)
		if err == nil && t.Name != filepath.Base(dir) {
			err = fmt.Errorf("%s: the task's name %q must be its folder's name", filepath.Join(dir, TaskFile), t.Name)
		}
		return t, f, err
	} else if !errors.Is(serr, fs.ErrNotExist) {
		return nil, Files{}, serr
	}
	return nil, Files{}, fmt.Errorf("%v, and %s has no custom task %s (a folder with %s)", err, root, name, TaskFile)
}

// WriteLFPT5 writes examples as LFPT5 text lines ("input<TAB>label word"),
// the format of custom tasks. Inputs and targets must not hold tabs or
// newlines.
func WriteLFPT5(path string, exs []Example) error {
	var b bytes.Buffer
	for i, ex := range exs {
		if strings.ContainsAny(ex.Input+ex.Target, "\t\n\r") {
			return fmt.Errorf("%s: example %d holds a tab or a newline", path, i)
		}
		fmt.Fprintf(&b, "%s\t%s\n", ex.Input, ex.Target)
	}
	return atomicfile.WriteFile(path, b.Bytes())
}
