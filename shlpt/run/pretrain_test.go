package run

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/synth"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Pretraining a tiny T5 for a few dozen steps on the synthetic family
// lowers its loss, and the exported folder is an HF model folder that
// loads back with the trained weights.
func TestPretrain(t *testing.T) {
	base := t.TempDir()
	data, tok := filepath.Join(base, "data"), filepath.Join(base, "tok")
	if err := synth.WriteTokenizer(tok); err != nil {
		t.Fatal(err)
	}
	fam := synth.DemoFamily()
	for _, task := range fam.Pretrain[:4] {
		if err := synth.WriteTask(data, task, 1, synth.Sizes{Train: 24, Valid: 2, Test: 2}); err != nil {
			t.Fatal(err)
		}
	}
	arch, err := t5.LoadConfig("../../testdata/t5-tiny-fullvocab")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "model")
	pc := PretrainConfig{Arch: arch, Tokenizer: tok, Data: data, Steps: 36, BatchSize: 16, LR: 3e-3, WeightDecay: 0.01,
		MaxInputLen: 32, Seed: 2, KVal: 2, KTest: 2}
	e := newEngine(t)
	res, err := Pretrain(context.Background(), pc, out, false, Options{Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || len(res.Tasks) != 4 {
		t.Fatalf("results %+v", res)
	}
	// The loss of the last epoch is below the first's.
	f, err := os.Open(filepath.Join(out, pretrainRun, rundir.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l rundir.EpochLine
		json.Unmarshal(sc.Bytes(), &l)
		losses = append(losses, l.Loss)
	}
	f.Close()
	if len(losses) < 3 || !(losses[len(losses)-1] < 0.8*losses[0]) {
		t.Errorf("epoch losses %v do not go down", losses)
	}
	// The folder loads, with the configuration and the final weights.
	back, err := t5.LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	back.Source, arch.Source = "", ""
	if !reflect.DeepEqual(back, arch) {
		t.Errorf("config %+v, want %+v", back, arch)
	}
	m, err := t5.Load(e, out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	ck, err := loadCheckpoint(filepath.Join(out, pretrainRun))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, ht := range ck.method {
		if ht.Name == "weight/shared.weight" || ht.Name == "weight/decoder.block.0.layer.2.DenseReluDense.wo.weight" {
			got, err := m.Parameter(ht.Name[len("weight/"):]).Float32s()
			if err != nil || !reflect.DeepEqual(got, ht.Data) {
				t.Errorf("%s differs in the exported folder (%v)", ht.Name, err)
			}
			checked++
		}
	}
	if checked != 2 {
		t.Fatalf("checked %d weights", checked)
	}
	for _, name := range []string{"tokenizer.json", "config.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	// The folder is done: the same pretraining again changes nothing, and
	// resuming it needs no settings; another one is refused.
	model, _ := os.ReadFile(filepath.Join(out, "model.safetensors"))
	for _, resume := range []bool{false, true} {
		given := pc
		if resume {
			given = PretrainConfig{}
		}
		res, err := Pretrain(context.Background(), given, out, resume, Options{Engine: e})
		if err != nil || !res.AlreadyComplete {
			t.Errorf("pretraining a finished folder again (resume %v): %v", resume, err)
		}
	}
	if again, _ := os.ReadFile(filepath.Join(out, "model.safetensors")); !reflect.DeepEqual(model, again) {
		t.Error("pretraining a finished folder again changed its model")
	}
	other := pc
	other.Steps = 40
	if _, err := Pretrain(context.Background(), other, out, false, Options{Engine: e}); err == nil || !strings.Contains(err.Error(), "setting steps is 36 in the pretraining folder but 40 now") {
		t.Errorf("another pretraining into a used folder: %v", err)
	}
}

// An interrupted pretraining tells the command that continues it, and
// continuing it with no settings but the folder ends in the model folder.
func TestPretrainResume(t *testing.T) {
	base := t.TempDir()
	data, tok := filepath.Join(base, "data"), filepath.Join(base, "tok")
	if err := synth.WriteTokenizer(tok); err != nil {
		t.Fatal(err)
	}
	for _, task := range synth.DemoFamily().Pretrain[:2] {
		if err := synth.WriteTask(data, task, 1, synth.Sizes{Train: 16, Valid: 2, Test: 2}); err != nil {
			t.Fatal(err)
		}
	}
	arch, err := t5.LoadConfig("../../testdata/t5-tiny-fullvocab")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "model")
	pc := PretrainConfig{Arch: arch, Tokenizer: tok, Data: data, Steps: 6, BatchSize: 8, LR: 3e-3, WeightDecay: 0.01,
		MaxInputLen: 32, Seed: 2, KVal: 2, KTest: 2}
	ctx, cancel := context.WithCancel(context.Background())
	rep := &stepCanceller{Reporter: Quiet, after: 3, cancel: cancel}
	_, err = Pretrain(ctx, pc, out, false, Options{Engine: newEngine(t), Reporter: rep})
	cancel()
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "continue with: shlpt-vk pretrain --resume "+out) {
		t.Fatalf("interrupted pretraining: %v", err)
	}
	res, err := Pretrain(context.Background(), PretrainConfig{}, out, true, Options{Engine: newEngine(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || res.AlreadyComplete {
		t.Errorf("resumed pretraining: complete %v, already complete %v", res.Complete, res.AlreadyComplete)
	}
	if _, err := t5.LoadConfig(out); err != nil {
		t.Errorf("no model folder after resuming: %v", err)
	}
	stored, err := ReadPretrain(out)
	if err != nil || stored.Steps != 6 || stored.Arch.DModel != arch.DModel || len(stored.Tasks) != 2 {
		t.Errorf("pretrain.json: %+v, %v", stored, err)
	}
}
