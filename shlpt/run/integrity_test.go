package run

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Run directories that never lie: every output a checkpoint vouches for is
// checked on resume, and nothing non-finite is stored as a result.

// tensorRange returns the byte range of tensor name in a safetensors file.
func tensorRange(t *testing.T, file []byte, name string) (int, int) {
	t.Helper()
	n := int(binary.LittleEndian.Uint64(file[:8]))
	var header map[string]json.RawMessage
	if err := json.Unmarshal(file[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	var e struct {
		DataOffsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal(header[name], &e); err != nil {
		t.Fatalf("tensor %s: %v", name, err)
	}
	return 8 + n + e.DataOffsets[0], 8 + n + e.DataOffsets[1]
}

// flipMiddleBit flips one bit in the middle of tensor name of the file at
// path.
func flipMiddleBit(t *testing.T, path, name string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := tensorRange(t, b, name)
	b[(lo+hi)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// interrupted runs testConfig in dir until the context is cancelled after
// the given number of training steps.
func interrupted(t *testing.T, dir string, steps int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep := &stepCanceller{Reporter: Quiet, after: steps, cancel: cancel}
	if _, err := Run(ctx, testConfig(t), Options{Dir: dir, Engine: newEngine(t), Reporter: rep}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped after %d steps: %v", steps, err)
	}
}

// A bit flipped in a tensor of the checkpoint is an error naming the
// tensor, never a resume that goes on with the damaged value.
func TestResumeBitFlip(t *testing.T) {
	base := t.TempDir()
	good := filepath.Join(base, "good")
	// After 7 steps the first task's epochs were validated: the checkpoint
	// has a best state beside the current one.
	interrupted(t, good, 7)
	for _, tensor := range []string{"current/prompt", "best/prompt", "method/estimator.down.weight"} {
		t.Run(tensor, func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tensor, "/", "-"))
			if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, lockFile))
			ck := filepath.Join(dir, rundir.CheckpointFile)
			b, _ := os.ReadFile(ck)
			if _, hi := tensorRange(t, b, tensor); hi == 0 {
				t.Fatalf("no tensor %s in the checkpoint", tensor)
			}
			flipMiddleBit(t, ck, tensor)
			_, err := Run(context.Background(), testConfig(t), Options{Dir: dir, Engine: newEngine(t), Resume: true})
			if err == nil || !strings.Contains(err.Error(), "tensor "+tensor+" is damaged") {
				t.Fatalf("resume with a flipped bit in %s: %v", tensor, err)
			}
		})
	}
}

// The outputs of finished tasks and the checkpointed part of
// metrics.jsonl are restored on resume when deleted, emptied or damaged;
// the run then ends exactly as an uninterrupted one.
func TestResumeRestoresOutputs(t *testing.T) {
	ref := reference(t)
	base := t.TempDir()
	interruptedDir := filepath.Join(base, "interrupted")
	// 10 steps: the first task is done, the second in progress.
	interrupted(t, interruptedDir, 10)
	if _, err := os.Stat(filepath.Join(interruptedDir, "prompts", "cb.safetensors")); err != nil {
		t.Fatalf("the first task had not finished: %v", err)
	}
	for _, tc := range []struct {
		name     string
		damage   func(dir string)
		restored []string
	}{
		{"deleted prompt, damaged metrics and estimator", func(dir string) {
			os.Remove(filepath.Join(dir, "prompts", "cb.safetensors"))
			p := filepath.Join(dir, rundir.MetricsFile)
			b, _ := os.ReadFile(p)
			copy(b[10:], "XXXX")
			os.WriteFile(p, b, 0o644)
			os.WriteFile(filepath.Join(dir, "estimator.safetensors"), []byte("junk"), 0o644)
		}, []string{"prompts/cb.safetensors", rundir.MetricsFile, "estimator.safetensors"}},
		{"flipped bit in a prompt", func(dir string) { flipMiddleBit(t, filepath.Join(dir, "prompts", "cb.safetensors"), "prompt") },
			[]string{"prompts/cb.safetensors"}},
		{"emptied prompt", func(dir string) { os.WriteFile(filepath.Join(dir, "prompts", "cb.safetensors"), nil, 0o644) },
			[]string{"prompts/cb.safetensors"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := os.CopyFS(dir, os.DirFS(interruptedDir)); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, lockFile))
			tc.damage(dir)
			var logs logRecorder
			if _, err := Run(context.Background(), testConfig(t), Options{Dir: dir, Engine: newEngine(t), Reporter: &logs}); err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.restored {
				if !strings.Contains(logs.String(), f+" was missing or damaged: restored it from the checkpoint") {
					t.Errorf("the resume did not say it restored %s:\n%s", f, logs.String())
				}
			}
			sameRunOutputs(t, ref, dir)
			if _, err := rundir.ReadMetrics(dir); err != nil {
				t.Errorf("metrics.jsonl after the resume: %v", err)
			}
		})
	}
}

// logRecorder keeps the messages of a run.
type logRecorder struct {
	Reporter
	b strings.Builder
}

func (l *logRecorder) Logf(format string, args ...any) {
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *logRecorder) BeginEpoch(string, int, int, int, int, int) {}
func (l *logRecorder) Step(int, float64, float64)                 {}
func (l *logRecorder) EndEpoch(rundir.EpochLine)                  {}
func (l *logRecorder) String() string                             { return l.b.String() }

// Starting a finished run again changes nothing and says so; a damaged
// output of a finished run is restored.
func TestStartFinishedRun(t *testing.T) {
	ref := reference(t)
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.CopyFS(dir, os.DirFS(ref)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, lockFile))
	before := snapshotFiles(t, dir)
	res, err := Run(context.Background(), testConfig(t), Options{Dir: dir, Engine: newEngine(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.AlreadyComplete || !res.Complete {
		t.Errorf("a finished run started again: AlreadyComplete %v, Complete %v", res.AlreadyComplete, res.Complete)
	}
	if after := snapshotFiles(t, dir); !equalFiles(before, after) {
		t.Error("starting a finished run again changed its files")
	}
	flipMiddleBit(t, filepath.Join(dir, "prompts", "copa.safetensors"), "prompt")
	res, err = Run(context.Background(), testConfig(t), Options{Dir: dir, Engine: newEngine(t), Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.AlreadyComplete {
		t.Error("a repaired run says nothing changed")
	}
	if after := snapshotFiles(t, dir); !equalFiles(before, after) {
		t.Error("the damaged prompt was not restored")
	}
	// Without its checkpoint a finished directory cannot be resumed.
	os.Remove(filepath.Join(dir, rundir.CheckpointFile))
	_, err = Run(context.Background(), testConfig(t), Options{Dir: dir, Engine: newEngine(t)})
	if err == nil || !strings.Contains(err.Error(), "checkpoint is lost") {
		t.Errorf("a finished run without its checkpoint: %v", err)
	}
}

// snapshotFiles reads every file of a run directory but the lock.
func snapshotFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockFile {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// Leftovers of interrupted writes are removed: the temporary folder of an
// interrupted start, and temporary files of interrupted atomic writes.
func TestLeftoversRemoved(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	stale := filepath.Join(base, ".run.creating-0123456789ab")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	interrupted(t, dir, 2)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the folder of an interrupted start is still there (%v)", err)
	}
	tmp := filepath.Join(dir, ".checkpoint.safetensors.tmp-123")
	os.WriteFile(tmp, make([]byte, 1000), 0o644)
	interrupted(t, dir, 2)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("a temporary checkpoint is still there (%v)", err)
	}
	// A folder with other files is not a run directory.
	other := filepath.Join(base, "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), nil, 0o644)
	if _, err := Run(context.Background(), testConfig(t), Options{Dir: other, Engine: newEngine(t)}); err == nil || !strings.Contains(err.Error(), "not a run directory") {
		t.Errorf("a run into a folder of other files: %v", err)
	}
}

// A run whose loss becomes NaN stops with an error naming the task, epoch
// and step, keeps its last good checkpoint, and stores nothing non-finite.
func TestDivergenceStops(t *testing.T) {
	cfg := testConfig(t)
	cfg.LR = 1e30
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: newEngine(t)})
	if err == nil || !strings.Contains(err.Error(), "training diverged") || !strings.Contains(err.Error(), "task cb ") {
		t.Fatalf("a diverging run: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, rundir.PromptsDir)); len(entries) > 0 {
		t.Errorf("a diverged run stored %d prompts", len(entries))
	}
	if ck, err := loadCheckpoint(dir); err != nil || (ck != nil && ck.checkFinite() != nil) {
		t.Errorf("checkpoint after divergence: %v", err)
	}
	// Out-of-range and non-finite settings are refused before anything
	// is created.
	for _, tc := range []struct {
		change func(*rundir.Config)
		want   string
	}{
		{func(c *rundir.Config) { c.LR = 1e39 }, "setting lr is 1e+39"},
		{func(c *rundir.Config) { c.LR = math.Inf(1) }, "setting lr is +Inf"},
		{func(c *rundir.Config) { rundir.MethodSettings[method.SHLPTConfig](c).Delta = math.Inf(1) }, "setting shlpt.delta is +Inf"},
		{func(c *rundir.Config) { rundir.MethodSettings[method.SHLPTConfig](c).Delta = math.NaN() }, "setting shlpt.delta is NaN"},
		{func(c *rundir.Config) { rundir.MethodSettings[method.SHLPTConfig](c).Delta = -0.1 }, "delta -0.1 must not be negative"},
	} {
		c := testConfig(t)
		tc.change(&c)
		d := filepath.Join(t.TempDir(), "run")
		if _, err := Run(context.Background(), c, Options{Dir: d, Engine: newEngine(t)}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		if _, err := os.Stat(d); err == nil {
			t.Errorf("a refused run (%s) left its directory", tc.want)
		}
	}
}

// A model with a NaN weight is refused at load, naming the tensor, and no
// run directory is made.
func TestNonFiniteModel(t *testing.T) {
	src := "../../testdata/t5-tiny-fullvocab"
	model := filepath.Join(t.TempDir(), "model")
	if err := os.CopyFS(model, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(model, "model.safetensors")
	name := "decoder.final_layer_norm.weight"
	b, _ := os.ReadFile(p)
	lo, _ := tensorRange(t, b, name)
	binary.LittleEndian.PutUint32(b[lo+4*3:], math.Float32bits(float32(math.NaN())))
	os.WriteFile(p, b, 0o644)
	cfg := testConfig(t)
	cfg.Model = model
	dir := filepath.Join(t.TempDir(), "run")
	_, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: newEngine(t)})
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "NaN at index 3") {
		t.Fatalf("a model with a NaN weight: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("a refused model left a run directory")
	}
}
