package export

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/internal/reftest"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run/runtest"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

func TestMain(m *testing.M) {
	gputest.Main(m, func() {
		if runsDir != "" {
			os.RemoveAll(runsDir)
		}
	})
}

var (
	runsOnce sync.Once
	runsDir  string
	runsErr  error
)

// runs trains a SHLPT and a ProgPrompt run over cb and sst2 once for the
// tests of this package.
func runs(t *testing.T) (e *ag.Engine, shlpt, prog string) {
	t.Helper()
	e = ag.New(gputest.Device(t))
	runsOnce.Do(func() {
		runsDir, runsErr = os.MkdirTemp("", "shlpt-export-")
		if runsErr != nil {
			return
		}
		for _, m := range []string{"shlpt", "progprompt"} {
			runtest.Train(t, e, runtest.Config(t, m, "cb", "sst2"), filepath.Join(runsDir, m))
		}
	})
	if runsErr != nil {
		t.Fatal(runsErr)
	}
	return e, filepath.Join(runsDir, "shlpt"), filepath.Join(runsDir, "progprompt")
}

// The test reads the files as PEFT, safetensors and NumPy define them,
// with nothing of this package or of t5/safetensors.

// readSafetensors parses a safetensors file: the 8-byte little-endian
// header length, the JSON header, the data after it. It checks that the
// tensors' byte ranges tile the data exactly.
func readSafetensors(t *testing.T, path string) (meta map[string]string, tensors map[string]stEntry, data []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8 {
		t.Fatalf("%s: %d bytes", path, len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > uint64(len(b)-8) || n%8 != 0 {
		t.Fatalf("%s: header length %d of a %d-byte file (must be a multiple of 8)", path, n, len(b))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	tensors = map[string]stEntry{}
	var ranges [][2]uint64
	for k, v := range raw {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				t.Fatalf("%s: metadata: %v", path, err)
			}
			continue
		}
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("%s: tensor %s: %v", path, k, err)
		}
		tensors[k] = e
		ranges = append(ranges, e.DataOffsets)
	}
	data = b[8+n:]
	slices.SortFunc(ranges, func(a, b [2]uint64) int { return int(a[0]) - int(b[0]) })
	end := uint64(0)
	for _, r := range ranges {
		if r[0] != end || r[1] < r[0] {
			t.Fatalf("%s: data ranges %v do not tile the data", path, ranges)
		}
		end = r[1]
	}
	if end != uint64(len(data)) {
		t.Fatalf("%s: tensors cover %d of %d data bytes", path, end, len(data))
	}
	return meta, tensors, data
}

type stEntry struct {
	DType       string    `json:"dtype"`
	Shape       []int     `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

// f32s decodes little-endian float32 values.
func f32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// storedPrompt reads prompts/<task>.safetensors of a run independently.
func storedPrompt(t *testing.T, dir, task string) (shape []int, v []float32) {
	t.Helper()
	_, ts, data := readSafetensors(t, filepath.Join(dir, "prompts", task+".safetensors"))
	e, ok := ts["prompt"]
	if !ok || e.DType != "F32" || len(ts) != 1 {
		t.Fatalf("stored prompt of %s: %+v", task, ts)
	}
	return e.Shape, f32s(data[e.DataOffsets[0]:e.DataOffsets[1]])
}

// expected is what each task of a run is tested with, from the stored
// prompt files: ProgPrompt's task i gets [P_i; …; P_0].
func expected(t *testing.T, dir string, prog bool) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	var acc []float32
	for _, task := range []string{"cb", "sst2"} {
		shape, v := storedPrompt(t, dir, task)
		if shape[0] != 4 || shape[1] != 32 {
			t.Fatalf("stored prompt of %s is %v", task, shape)
		}
		if prog {
			acc = append(append([]float32(nil), v...), acc...)
			v = acc
		}
		out[task] = v
	}
	return out
}

// Every field PEFT's PromptTuningConfig reads, the safetensors header's
// dtype, shape and offsets and the values, read independently, for SHLPT's
// stored prompts and ProgPrompt's concatenations.
func TestExportPEFT(t *testing.T) {
	_, shlpt, prog := runs(t)
	for _, c := range []struct {
		dir  string
		prog bool
	}{{shlpt, false}, {prog, true}} {
		info, err := rundir.ReadInfo(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		paths, err := Export(c.dir, "peft", out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 2 {
			t.Fatalf("exported %v", paths)
		}
		want := expected(t, c.dir, c.prog)
		for _, task := range []string{"cb", "sst2"} {
			dir := filepath.Join(out, task)
			var cfg map[string]any
			b, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			Lp := len(want[task]) / 32
			for k, v := range map[string]any{
				"peft_type": "PROMPT_TUNING", "task_type": "SEQ_2_SEQ_LM", "num_virtual_tokens": float64(Lp),
				"token_dim": float64(32), "num_transformer_submodules": float64(1), "num_attention_heads": float64(4),
				"num_layers": float64(2), "prompt_tuning_init": "RANDOM", "base_model_name_or_path": info.Settings.Model,
				"inference_mode": true,
			} {
				if cfg[k] != v {
					t.Errorf("%s: %s is %v (%T), want %v", dir, k, cfg[k], cfg[k], v)
				}
			}
			meta, ts, data := readSafetensors(t, filepath.Join(dir, "adapter_model.safetensors"))
			e, ok := ts["prompt_embeddings"]
			if !ok || len(ts) != 1 {
				t.Fatalf("%s: tensors %v", dir, ts)
			}
			if e.DType != "F32" || !slices.Equal(e.Shape, []int{Lp, 32}) || e.DataOffsets != [2]uint64{0, uint64(4 * Lp * 32)} {
				t.Errorf("%s: prompt_embeddings %+v, want F32 [%d 32] at [0 %d]", dir, e, Lp, 4*Lp*32)
			}
			if meta["format"] != "pt" {
				t.Errorf("%s: metadata %v", dir, meta)
			}
			if got := f32s(data); !reftest.SameBits(got, want[task]) {
				t.Errorf("%s: the values are not the stored prompt(s)", dir)
			}
		}
	}
}

// The .npy files as NumPy's format 1.0 defines them: magic, version,
// header length, a dict with descr '<f4', C order and the shape, the
// header padded to 64 bytes and ending with a newline, then the values.
func TestExportNPY(t *testing.T) {
	_, _, prog := runs(t)
	out := t.TempDir()
	if _, err := Export(prog, "npy", out, []string{"SST-2"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "sst2.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x93NUMPY\x01\x00")) {
		t.Fatalf("magic and version %q", b[:8])
	}
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	header := string(b[10 : 10+hl])
	if (10+hl)%64 != 0 || !strings.HasSuffix(header, "\n") {
		t.Errorf("header of %d bytes (%q) does not end a 64-byte block with a newline", hl, header)
	}
	m := regexp.MustCompile(`^\{'descr': '<f4', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n$`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("header %q", header)
	}
	rows, _ := strconv.Atoi(m[1])
	cols, _ := strconv.Atoi(m[2])
	want := expected(t, prog, true)["sst2"]
	if rows != 8 || cols != 32 || !reftest.SameBits(f32s(b[10+hl:]), want) {
		t.Errorf("shape (%d, %d) and values differ from the concatenated prompts (8, 32)", rows, cols)
	}
	if _, err := os.Stat(filepath.Join(out, "cb.npy")); err == nil {
		t.Error("cb was exported although only sst2 was asked for")
	}
}

// L2P, CODA and the full-weight methods are refused with the reason, as
// are unknown formats and tasks the run has not learned.
func TestExportRefused(t *testing.T) {
	_, shlpt, _ := runs(t)
	for method, reason := range map[string]string{
		"l2p": "input-dependent prompts", "coda": "input-dependent prompts",
		"finetune": "changes the model's weights", "ewc": "changes the model's weights", "er": "changes the model's weights",
	} {
		// The SHLPT run's config.json made another method's.
		info, err := rundir.ReadInfo(shlpt)
		if err != nil {
			t.Fatal(err)
		}
		if err := info.Settings.UseMethod(method); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(info)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, rundir.ConfigFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = Export(dir, "peft", t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), reason) || !strings.Contains(err.Error(), method) {
			t.Errorf("%s: %v, want the reason %q", method, err, reason)
		}
	}
	for _, c := range []struct {
		format string
		tasks  []string
		want   string
	}{
		{"onnx", nil, `unknown export format "onnx"`},
		{"peft", []string{"rte"}, `has no task "rte"`},
	} {
		if _, err := Export(shlpt, c.format, t.TempDir(), c.tasks); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.format, c.tasks, err, c.want)
		}
	}
}

// Exported adapters imported back are the same prompts bit for bit, with
// the same cards, and eval scores a run with the imported prompts exactly
// as with its own.
func TestImportRoundTrip(t *testing.T) {
	e, _, prog := runs(t)
	exp := t.TempDir()
	if _, err := Export(prog, "peft", exp, nil); err != nil {
		t.Fatal(err)
	}
	orig, err := FromRun(prog, nil)
	if err != nil {
		t.Fatal(err)
	}
	imp := filepath.Join(t.TempDir(), "imported")
	if _, err := Import([]string{filepath.Join(exp, "cb"), filepath.Join(exp, "sst2")}, imp, ""); err != nil {
		t.Fatal(err)
	}
	back, err := Load(imp)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(orig) {
		t.Fatalf("%d prompts imported, %d exported", len(back), len(orig))
	}
	for i := range orig {
		if !reftest.SameBits(back[i].Prompt.Data, orig[i].Prompt.Data) || back[i].Prompt.Lp != orig[i].Prompt.Lp {
			t.Errorf("%s: the imported prompt differs", orig[i].Card.Task)
		}
		if !jsonEqual(back[i].Card, orig[i].Card) {
			t.Errorf("%s: card %+v imported, %+v exported", orig[i].Card.Task, back[i].Card, orig[i].Card)
		}
	}
	own, err := run.Evaluate(context.Background(), run.EvalOptions{Dir: prog, Name: "own", Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	with, err := run.Evaluate(context.Background(), run.EvalOptions{Dir: prog, Name: "imported", Prompts: imp, Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(own.Matrix, with.Matrix) {
		t.Errorf("scores with imported prompts %v, with the run's %v", with.Matrix.Test, own.Matrix.Test)
	}
	a, _ := os.ReadFile(rundir.PredictionsFile(prog, "own"))
	b, _ := os.ReadFile(rundir.PredictionsFile(prog, "imported"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("predictions and label scores with imported prompts differ from the run's own")
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// Adapters that are not encoder prompt tuning, or whose weights do not
// match their configuration, are refused with the reason.
func TestImportRefused(t *testing.T) {
	_, shlpt, _ := runs(t)
	exp := t.TempDir()
	if _, err := Export(shlpt, "peft", exp, []string{"cb"}); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(exp, "cb")
	cfgBytes, _ := os.ReadFile(filepath.Join(src, PEFTConfigFile))
	edit := func(t *testing.T, from, to string) string {
		dir := filepath.Join(t.TempDir(), "cb")
		os.MkdirAll(dir, 0o755)
		for _, f := range []string{PEFTWeightsFile, CardFile} {
			b, _ := os.ReadFile(filepath.Join(src, f))
			os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		cfg := strings.Replace(string(cfgBytes), from, to, 1)
		os.WriteFile(filepath.Join(dir, PEFTConfigFile), []byte(cfg), 0o644)
		return dir
	}
	for _, c := range []struct {
		from, to, want string
	}{
		{`"peft_type": "PROMPT_TUNING"`, `"peft_type": "LORA"`, `peft_type "LORA"`},
		{`"num_transformer_submodules": 1`, `"num_transformer_submodules": 2`, "prompts the decoder too"},
		{`"num_virtual_tokens": 4`, `"num_virtual_tokens": 5`, "prompt_embeddings is [4 32]"},
		{`"task_type": "SEQ_2_SEQ_LM"`, `"task_type": "CAUSAL_LM"`, `task_type "CAUSAL_LM"`},
	} {
		dir := edit(t, c.from, c.to)
		if _, err := Import([]string{dir}, t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.to, err, c.want)
		}
	}
	dir := edit(t, "", "")
	os.Remove(filepath.Join(dir, CardFile))
	if _, err := Import([]string{dir}, t.TempDir(), "mytask"); err == nil || !strings.Contains(err.Error(), "name the task") {
		t.Errorf("an adapter of an unknown task without a card: %v", err)
	}
	if tps, err := Import([]string{dir}, t.TempDir(), ""); err != nil || tps[0].Card.Task != "cb" || tps[0].Card.Decode != "beam" {
		t.Errorf("an adapter without a card in a folder named after a built-in task: %+v, %v", tps, err)
	}
}
