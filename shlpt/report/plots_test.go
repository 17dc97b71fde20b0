package report

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// pairGrid adds the transfer study: continual-init on every (source,
// target) pair of three tasks and per-task prompt tuning on each task.
func pairGrid(t *testing.T, root, model string) {
	t.Helper()
	tasks := []string{"cb", "rte", "sst2"}
	for si, src := range tasks {
		for ti, tgt := range tasks {
			if src == tgt {
				continue
			}
			for _, seed := range PaperSeeds[:1] {
				fakeRun(t, filepath.Join(root, fmt.Sprintf("pairs/%s-%s/s%d", src, tgt, seed)),
					fakeSpec{method: "continual-init", tasks: []string{src, tgt}, seed: seed, model: model, base: 60 + 7*float64(si) - 5*float64(ti)})
			}
		}
		for _, seed := range PaperSeeds[:1] {
			fakeRun(t, filepath.Join(root, fmt.Sprintf("pertask/%s/s%d", src, seed)),
				fakeSpec{method: "per-task", tasks: []string{src}, seed: seed, model: model, base: 66})
		}
	}
}

// Every figure is drawn, is a PNG of a readable size, and lands in
// plots/. REPORT_PLOTS=DIR keeps them for looking at.
func TestPlots(t *testing.T) {
	root := fakeGrid(t)
	pairGrid(t, root, fakeModel(t, true))
	// A long sequence, for the figures' widths.
	for _, seed := range PaperSeeds[:1] {
		fakeRun(t, filepath.Join(root, fmt.Sprintf("long/s%d", seed)),
			fakeSpec{method: "shlpt", benchmark: "long", order: 4, seed: seed, model: fakeModel(t, true), base: 60, drop: 1,
				change: func(c *rundir.Config) { c.Epochs = 3 }})
	}
	// Activation similarities of SHLPT and of its -ASC ablation on order 1.
	noASC := filepath.Join(root, "std-o1/shlpt-noasc/s42")
	fakeRun(t, noASC, fakeSpec{method: "shlpt", benchmark: "std", order: 1, seed: 42, model: r0model(t, root), base: 77,
		change: func(c *rundir.Config) { rundir.MethodSettings[method.SHLPTConfig](c).NoASC = true }})
	for dir, off := range map[string]float64{filepath.Join(root, "std-o1/shlpt/s42"): 0, noASC: 0.3} {
		a := rundir.Activations{Tasks: []string{"dbpedia", "amazon", "yahoo", "ag"}, InputsPerTask: 10}
		for i := range a.Tasks {
			row := make([]float64, len(a.Tasks))
			for j := range row {
				row[j] = 1
				if i != j {
					row[j] = 0.4 + off + 0.05*float64(i+j)
				}
			}
			a.Similarity = append(a.Similarity, row)
		}
		write(t, filepath.Join(dir, rundir.ActivationsFile), a)
	}
	r, err := Build([]string{root + "/std-o1/*/s*", root + "/pairs/*/*", root + "/pertask/*/*", root + "/long/*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) > 0 {
		t.Fatal(r.Problems)
	}
	out := os.Getenv("REPORT_PLOTS")
	if out == "" {
		out = t.TempDir()
	}
	figs, err := r.Plots(out)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, f := range figs {
		kinds[f.Kind]++
		fh, err := os.Open(filepath.Join(out, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(fh)
		fh.Close()
		if err != nil || cfg.Width < 400 || cfg.Height < 300 {
			t.Errorf("%s: %v %dx%d", f.Path, err, cfg.Width, cfg.Height)
		}
	}
	for _, k := range []string{"matrix", "bars", "alpha", "curves", "transfer", "activations"} {
		if kinds[k] == 0 {
			t.Errorf("no %s figure (%v)", k, kinds)
		}
	}
}

// r0model is the model folder of the grid's first SHLPT run.
func r0model(t *testing.T, root string) string {
	t.Helper()
	info, err := rundir.ReadInfo(filepath.Join(root, "std-o1/shlpt/s42"))
	if err != nil {
		t.Fatal(err)
	}
	return info.Settings.Model
}
