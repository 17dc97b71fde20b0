package run

import (
	"fmt"
	"math"
	"slices"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// rowPrompter gives each row its own prompt (B, Lp, d), a function of the
// row's input alone, and checks that it sees as many examples as rows.
type rowPrompter struct {
	m     *t5.Model
	Lp    int
	calls int
}

func (p *rowPrompter) Prompt(b *method.Batch) (*ag.Tensor, error) {
	p.calls++
	B, d := b.Device.InputIDs.Dim(0), p.m.Config.DModel
	if len(b.Examples) != B {
		return nil, fmt.Errorf("%d examples for a batch of %d rows", len(b.Examples), B)
	}
	v := make([]float32, 0, B*p.Lp*d)
	for _, ex := range b.Examples {
		for i := 0; i < p.Lp*d; i++ {
			v = append(v, 0.5*float32(math.Cos(float64(ex.Input[0]*17+len(ex.Input)+i))))
		}
	}
	return p.m.Engine().FromFloat32(v, B, p.Lp, d), nil
}

func (p *rowPrompter) Release() {}

// evalFixture is an evaluator with batches of 4 rows on the tiny model
// (vocabulary 100) and 10 examples of 2 to 9 tokens: two full batches and
// a short one.
func evalFixture(t *testing.T) (*evaluator, []method.Example) {
	t.Helper()
	e := newEngine(t)
	m, err := t5.Load(e, "../../testdata/t5-tiny-relu")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rundir.Config{EvalBatchSize: 4, MaxInputLen: 40, Decode: "rank"}
	ev := &evaluator{m: m, cfg: cfg}
	t.Cleanup(func() {
		ev.release()
		m.Release()
	})
	var exs []method.Example
	for i := 0; i < 10; i++ {
		in := []int{}
		for j := 0; j < 1+(i*5)%8; j++ {
			in = append(in, 2+(i*13+j*7)%97)
		}
		exs = append(exs, method.Example{Input: append(in, 1)})
	}
	return ev, exs
}

// eagerRankScores scores exs batch by batch as the evaluator did before it
// recorded anything: each batch padded to its own longest row, its prompt,
// the encoder and ScoreCandidates.
func eagerRankScores(t *testing.T, ev *evaluator, exs []method.Example, pr method.Prompter, cands [][]int) [][]float64 {
	t.Helper()
	m := ev.m
	defer m.Engine().NoGrad()()
	var out [][]float64
	for lo := 0; lo < len(exs); lo += ev.cfg.EvalBatchSize {
		rows := exs[lo:min(lo+ev.cfg.EvalBatchSize, len(exs))]
		inputs := make([][]int, len(rows))
		for i, r := range rows {
			inputs[i] = r.Input
		}
		b, err := m.NewBatch(inputs, nil, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		p, err := pr.Prompt(&method.Batch{Examples: rows, Device: b})
		if err != nil {
			t.Fatal(err)
		}
		enc, mask := m.EncodeBatch(b, p)
		s, err := m.ScoreCandidates(enc, mask, cands)
		for _, x := range []*ag.Tensor{p, enc, mask} {
			x.Release()
		}
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s...)
	}
	return out
}

// Rank classification replayed from a recorded pass scores every example
// (a short last batch included) as the eager pass does, with no prompt,
// one shared prompt and one prompt per row.
func TestRankReplayedMatchesEager(t *testing.T) {
	ev, exs := evalFixture(t)
	m := ev.m
	cands := [][]int{{7, 1}, {33, 12, 1}, {1}}
	d := m.Config.DModel
	shared := make([]float32, 3*d)
	for i := range shared {
		shared[i] = 0.3 * float32(math.Sin(float64(i)))
	}
	for _, tc := range []struct {
		name string
		pr   method.Prompter
	}{
		{"none", method.FixedPrompt{}},
		{"shared", method.FixedPrompt{P: m.Engine().FromFloat32(shared, 3, d)}},
		{"per-row", &rowPrompter{m: m, Lp: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.pr.Release()
			got, err := ev.rankScores(exs, tc.pr, cands, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := eagerRankScores(t, ev, exs, tc.pr, cands)
			if len(got) != len(exs) || len(want) != len(exs) {
				t.Fatalf("%d replayed and %d eager scores for %d examples", len(got), len(want), len(exs))
			}
			for r := range want {
				for c := range cands {
					if diff := math.Abs(got[r][c] - want[r][c]); !(diff <= 1e-5) {
						t.Errorf("example %d candidate %d: replayed %v, eager %v (difference %.3g)", r, c, got[r][c], want[r][c], diff)
					}
				}
			}
		})
	}
}

// A second evaluation of the same examples replays the recorded pass
// (nothing is recorded again) and predicts the same labels from the same
// scores; the cache keeps at most maxRankSlots passes.
func TestRankReusesRecordedPass(t *testing.T) {
	ev, exs := evalFixture(t)
	// Two labels that the tiny model's scores split about evenly.
	task := &tasks.Task{Name: "fixture", Labels: []string{"a", "b"}}
	cands := [][]int{{2, 1}, {7, 1}}
	pr := &rowPrompter{m: ev.m, Lp: 2}
	first, _, err := ev.rank(task, exs, pr, cands, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.captures != 1 || len(ev.slots) != 1 {
		t.Fatalf("after one evaluation: %d recorded passes, %d cached", ev.captures, len(ev.slots))
	}
	slot := ev.slots[0]
	if !slices.Contains(first, "a") || !slices.Contains(first, "b") {
		t.Errorf("predictions %v: one label everywhere proves little", first)
	}
	scores1, err := ev.rankScores(exs, pr, cands, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := ev.rank(task, exs, pr, cands, 0)
	if err != nil {
		t.Fatal(err)
	}
	scores2, err := ev.rankScores(exs, pr, cands, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.captures != 1 || len(ev.slots) != 1 || ev.slots[0] != slot {
		t.Fatalf("after four evaluations: %d recorded passes, %d cached", ev.captures, len(ev.slots))
	}
	if fmt.Sprint(first) != fmt.Sprint(second) || fmt.Sprint(scores1) != fmt.Sprint(scores2) {
		t.Errorf("the second evaluation differs:\n%v\n%v\n%v\n%v", first, second, scores1, scores2)
	}
	if pr.calls != 4*3 {
		t.Errorf("the prompter ran %d times for 4 evaluations of 3 batches", pr.calls)
	}
	// Another input length and another prompt shape are two more passes;
	// the least recently used (the first) goes.
	if _, _, err := ev.rank(task, exs, pr, cands, 12); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ev.rank(task, exs, method.FixedPrompt{}, cands, 0); err != nil {
		t.Fatal(err)
	}
	if ev.captures != 3 || len(ev.slots) != maxRankSlots {
		t.Fatalf("after three kinds of batches: %d recorded passes, %d cached", ev.captures, len(ev.slots))
	}
	for _, s := range ev.slots {
		if s == slot {
			t.Error("the least recently used pass is still cached")
		}
	}
	third, _, err := ev.rank(task, exs, pr, cands, 12)
	if err != nil {
		t.Fatal(err)
	}
	if ev.captures != 3 || fmt.Sprint(third) != fmt.Sprint(first) {
		t.Errorf("padded to 12 tokens: %d recorded passes, predictions %v (at the longest input: %v)", ev.captures, third, first)
	}
	// Fewer examples than a batch: a batch of as many rows, no filler.
	few, _, err := ev.rank(task, exs[:3], pr, cands, 12)
	if err != nil {
		t.Fatal(err)
	}
	if last := ev.slots[len(ev.slots)-1]; last.key.B != 3 || fmt.Sprint(few) != fmt.Sprint(first[:3]) {
		t.Errorf("3 examples: a pass for %d rows, predictions %v (of all: %v)", last.key.B, few, first)
	}
}
