package tasks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A custom task folder loads, samples like a built-in task, and its bad
// definitions are errors naming task.json.
func TestCustomTask(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "colors")
	os.MkdirAll(dir, 0o755)
	var exs []Example
	for i := 0; i < 20; i++ {
		label := []string{"warm", "cold"}[i%2]
		exs = append(exs, Example{Input: "word " + []string{"red", "blue"}[i%2] + " " + string(rune('a'+i)), Target: label})
	}
	for _, f := range []string{"train.txt", "test.txt"} {
		if err := WriteLFPT5(filepath.Join(dir, f), exs); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, TaskFile), []byte(`{"name": "colors", "labels": ["warm", "cold"], "target_len": 3, "train": "train.txt", "test": "test.txt"}`), 0o644)
	task, files, err := Resolve(root, "colors")
	if err != nil {
		t.Fatal(err)
	}
	if task.Name != "colors" || task.TargetLen != 3 || task.Format != LFPT5Text || files.Valid != "" {
		t.Fatalf("task %+v, files %+v", task, files)
	}
	d, err := Load(task, files, 7, Config{KTrain: 3, KVal: 2, KTest: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Train)+len(d.Valid) != 10 || len(d.Test) != 8 {
		t.Errorf("%d train, %d valid, %d test examples", len(d.Train), len(d.Valid), len(d.Test))
	}
	for _, ex := range d.Train {
		want := "warm"
		if strings.Contains(ex.Input, "blue") {
			want = "cold"
		}
		if ex.Target != want || task.Labels[ex.Class] != want {
			t.Fatalf("example %+v", ex)
		}
	}
	// A built-in task still resolves to the SHLPT layout.
	if cb, f, err := Resolve(root, "cb"); err != nil || cb.Name != "cb" || !strings.HasSuffix(f.Train, filepath.Join("CB", "train.jsonl")) {
		t.Errorf("cb: %v %+v %v", cb, f, err)
	}
	for _, tc := range []struct{ def, want string }{
		{`{"name": "x", "labels": ["a"], "train": "train.txt", "test": "test.txt"}`, "at least 2 label"},
		{`{"name": "x", "labels": ["a", "A"], "train": "train.txt", "test": "test.txt"}`, "repeats"},
		{`{"name": "cb", "labels": ["a", "b"], "train": "train.txt", "test": "test.txt"}`, "built-in"},
		{`{"name": "x", "labels": ["a", "b"], "test": "test.txt"}`, "train and test"},
		{`{"name": "x", "labels": ["a", "b"], "train": "t", "test": "t", "extra": 1}`, "unknown field"},
		{`{"name": "x y", "labels": ["a", "b"], "train": "t", "test": "t"}`, "one word"},
		{`{"name": "x", "labels": ["a", "b"], "train": "../../secret", "test": "t"}`, `train file "../../secret" must be a path inside`},
		{`{"name": "x", "labels": ["a", "b"], "train": "t", "test": "/etc/passwd"}`, `test file "/etc/passwd"`},
		{`{"name": "x", "labels": ["a", "b"], "train": "t", "valid": "a/../../v", "test": "t"}`, `valid file`},
	} {
		os.WriteFile(filepath.Join(dir, TaskFile), []byte(tc.def), 0o644)
		if _, _, err := LoadCustom(dir); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), TaskFile) {
			t.Errorf("%s: error %v, want %q", tc.def, err, tc.want)
		}
	}
	if _, _, err := Resolve(root, "nosuch"); err == nil || !strings.Contains(err.Error(), TaskFile) {
		t.Errorf("unknown task: %v", err)
	}
	// A task name that is a path names what was typed.
	for _, name := range []string{"../x", "a/b", ".."} {
		if _, _, err := Resolve(filepath.Join(root, "sub"), name); err == nil || !strings.Contains(err.Error(), `"`+name+`"`) || !strings.Contains(err.Error(), "not a path") {
			t.Errorf("task %q: %v", name, err)
		}
	}
	if err := WriteLFPT5(filepath.Join(dir, "bad.txt"), []Example{{Input: "a\tb", Target: "warm"}}); err == nil {
		t.Error("an input with a tab was written")
	}
}
