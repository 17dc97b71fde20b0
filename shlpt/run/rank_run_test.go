package run

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Rank classification, whose evaluation replays recorded passes, keeps
// runs deterministic: a run interrupted and resumed ends byte for byte as
// the uninterrupted one. SHLPT with the reference's validation (every quirk)
// mixes a prompt per row from the batch's examples; L2P picks prompts per
// row from an encoder query read on the host.
func TestRankRunResume(t *testing.T) {
	e := newEngine(t)
	for _, name := range []string{"shlpt", "l2p"} {
		t.Run(name, func(t *testing.T) {
			cfg := methodConfig(t, name)
			cfg.Tasks = []string{"cb", "sst2"}
			cfg.Decode = "rank"
			cfg.EvalBatchSize = 4 // validation and test sets end with a short batch
			if name == "shlpt" {
				rundir.MethodSettings[method.SHLPTConfig](&cfg).Quirks = method.QuirkNames
			}
			base := t.TempDir()
			ref, dir := filepath.Join(base, "ref"), filepath.Join(base, "run")
			if _, err := Run(context.Background(), cfg, Options{Dir: ref, Engine: e}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			rep := &stepCanceller{Reporter: Quiet, after: 5, cancel: cancel}
			_, err := Run(ctx, cfg, Options{Dir: dir, Engine: e, Reporter: rep})
			cancel()
			if !errors.Is(err, ErrInterrupted) {
				t.Fatalf("stopped after 5 steps: %v", err)
			}
			if _, err := Run(context.Background(), cfg, Options{Dir: dir, Engine: e, Resume: true}); err != nil {
				t.Fatal(err)
			}
			ra, rb := readResults(t, ref), readResults(t, dir)
			if !ra.Complete || !rb.Complete {
				t.Fatal("incomplete results")
			}
			for _, v := range []func(*rundir.Results) any{
				func(r *rundir.Results) any { return r.Matrix },
				func(r *rundir.Results) any { return r.PerTask[len(r.PerTask)-1].Scores },
			} {
				a, _ := json.Marshal(v(ra))
				b, _ := json.Marshal(v(rb))
				if !bytes.Equal(a, b) {
					t.Errorf("the resumed run differs:\n%s\n%s", a, b)
				}
			}
			x, err1 := os.ReadFile(filepath.Join(ref, rundir.MetricsFile))
			y, err2 := os.ReadFile(filepath.Join(dir, rundir.MetricsFile))
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if !bytes.Equal(validScores(t, x), validScores(t, y)) {
				t.Errorf("validation scores differ:\n%s\n%s", validScores(t, x), validScores(t, y))
			}
		})
	}
}

// validScores are the validation scores of every line of metrics.jsonl.
func validScores(t *testing.T, metrics []byte) []byte {
	t.Helper()
	var out []*float64
	for _, l := range bytes.Split(bytes.TrimSpace(metrics), []byte("\n")) {
		var line rundir.EpochLine
		if err := json.Unmarshal(l, &line); err != nil {
			t.Fatal(err)
		}
		out = append(out, line.Valid)
	}
	b, _ := json.Marshal(out)
	return b
}
