package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/run/runtest"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

var (
	runsOnce sync.Once
	runsDir  string
	runsErr  error
)

func TestMain(m *testing.M) {
	gputest.Main(m, func() {
		if runsDir != "" {
			os.RemoveAll(runsDir)
		}
	})
}

func newEngine(t testing.TB) *ag.Engine {
	t.Helper()
	e := ag.New(gputest.Device(t))
	t.Cleanup(func() {
		if err := e.Err(); err != nil {
			t.Errorf("engine: %v", err)
		}
	})
	return e
}

// testRuns trains, once for the package's tests, two runs on the tiny
// model: SHLPT over cb and sst2 with rank classification, and ProgPrompt
// (prompts of 4 and 8 rows) over copa and rte with beam search; and it
// scores each with eval, whose per-example predictions the tests compare
// with.
func testRuns(t testing.TB) (shlpt, prog string) {
	t.Helper()
	runsOnce.Do(func() {
		e := ag.New(gputest.Device(t))
		if runsDir, runsErr = os.MkdirTemp("", "shlpt-serve-"); runsErr != nil {
			return
		}
		a := runtest.Config(t, "shlpt", "cb", "sst2")
		b := runtest.Config(t, "progprompt", "copa", "rte")
		b.Decode = "beam"
		for _, c := range []struct {
			dir string
			cfg rundir.Config
		}{{"shlpt", a}, {"progprompt", b}} {
			dir := runtest.Train(t, e, c.cfg, filepath.Join(runsDir, c.dir))
			if _, runsErr = run.Evaluate(context.Background(), run.EvalOptions{Dir: dir, Name: "ref", Engine: e}); runsErr != nil {
				return
			}
		}
	})
	if runsErr != nil {
		t.Fatal(runsErr)
	}
	return filepath.Join(runsDir, "shlpt"), filepath.Join(runsDir, "progprompt")
}

// start serves the test runs with o's settings.
func start(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	a, b := testRuns(t)
	if o.Sources == nil {
		o.Sources = []string{a, b}
	}
	o.Engine = newEngine(t)
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return s, hs
}

// post sends body to path and decodes the answer into out (when 200).
func post(t *testing.T, url string, body any, out any) (int, http.Header, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(got, out); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
	}
	return resp.StatusCode, resp.Header, got
}

func readPredictions(t *testing.T, dir string) []rundir.Prediction {
	t.Helper()
	b, err := os.ReadFile(rundir.PredictionsFile(dir, "ref"))
	if err != nil {
		t.Fatal(err)
	}
	var out []rundir.Prediction
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var p rundir.Prediction
		if err := json.Unmarshal(l, &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// A request for every test example of four tasks of two runs (prompts of
// 4 and 4 + 4 rows; rank and beam decoding; classification and
// completion), sent at once, runs in mixed batches and gets exactly eval's
// prediction and label scores, example by example — eagerly and through
// recorded programs, with inputs given as eval's text (raw) and through
// the task's template.
func TestMixedBatchesMatchEval(t *testing.T) {
	a, b := testRuns(t)
	want := append(readPredictions(t, a), readPredictions(t, b)...)
	for _, programs := range []int{0, 4} {
		t.Run(fmt.Sprintf("programs=%d", programs), func(t *testing.T) {
			s, hs := start(t, Options{Window: 300 * time.Millisecond, MaxBatch: 64, Programs: programs})
			var wg sync.WaitGroup
			for i, p := range want {
				wg.Add(1)
				go func() {
					defer wg.Done()
					checkPrediction(t, hs.URL, p, i%2 == 0)
				}()
			}
			wg.Wait()
			s.met.mu.Lock()
			mixed := s.met.tasks.n - s.met.tasks.counts[0] // passes with more than one task
			passes := s.met.batches
			s.met.mu.Unlock()
			if mixed == 0 {
				t.Errorf("none of %d forward passes mixed tasks", passes)
			}
			if passes >= int64(len(want)) {
				t.Errorf("%d forward passes for %d requests: nothing was batched", passes, len(want))
			}
		})
	}
}

// checkPrediction asks the server for p's input the way its task is
// decoded and compares with eval's answer; raw sends eval's input text,
// otherwise the fields the template fills.
func checkPrediction(t *testing.T, url string, p rundir.Prediction, raw bool) {
	var input any = p.Input
	if !raw {
		input = fieldsOf(t, p.Task, p.Input)
	}
	if p.Scores != nil {
		var got classifyResponse
		code, _, body := post(t, url+"/v1/classify", map[string]any{"model": p.Task, "input": input, "raw": raw}, &got)
		if code != http.StatusOK {
			t.Errorf("%s example %d: %d %s", p.Task, p.Index, code, body)
			return
		}
		var scores []float64
		for _, sc := range got.Data[0].Scores {
			scores = append(scores, sc.Score)
		}
		if got.Data[0].Label != p.Prediction || !slices.Equal(scores, p.Scores) {
			t.Errorf("%s example %d: served %q %v, eval %q %v", p.Task, p.Index, got.Data[0].Label, scores, p.Prediction, p.Scores)
		}
	}
	var got completionResponse
	code, _, body := post(t, url+"/v1/completions", map[string]any{"model": p.Task, "prompt": input, "raw": raw}, &got)
	if code != http.StatusOK {
		t.Errorf("%s example %d: %d %s", p.Task, p.Index, code, body)
		return
	}
	if got.Choices[0].Text != p.Prediction {
		t.Errorf("%s example %d: completion %q, eval %q", p.Task, p.Index, got.Choices[0].Text, p.Prediction)
	}
}

// fieldsOf recovers the template's fields from an input the template
// built (the test inputs hold no "key: " of another field): the value of a
// one-field template as a string, else an object.
func fieldsOf(t *testing.T, task, input string) any {
	t.Helper()
	def, err := tasks.Lookup(task)
	if err != nil {
		t.Fatal(err)
	}
	fields := def.Fields()
	out := map[string]string{}
	rest := input
	for i, f := range fields {
		rest = strings.TrimPrefix(rest, f+": ")
		end := len(rest)
		if i+1 < len(fields) {
			end = strings.Index(rest, " "+fields[i+1]+": ")
		} else {
			end = len(rest) - 1 // the trailing space
		}
		if end < 0 {
			t.Fatalf("%s: cannot split %q at %s", task, input, fields[i+1])
		}
		out[f] = rest[:end]
		rest = rest[end+1:]
	}
	if s, _ := def.Input(out); s != input {
		t.Fatalf("%s: fields %v rebuild %q, not %q", task, out, s, input)
	}
	if len(fields) == 1 {
		return out[fields[0]]
	}
	return out
}

// The card's template fills exactly as the task definitions build inputs
// when they read their files, for every built-in task (values that look
// like placeholders stay as they are).
func TestTemplateAsTraining(t *testing.T) {
	for _, def := range tasks.All() {
		vals := map[string]string{}
		for i, f := range def.Fields() {
			vals[f] = fmt.Sprintf("v%d {%s} ü", i, f)
		}
		want, err := def.Input(vals)
		if err != nil {
			t.Fatal(err)
		}
		if got := fillTemplate(def.Template(), def.Fields(), vals); got != want {
			t.Errorf("%s: %q, the task builds %q", def.Name, got, want)
		}
	}
}
