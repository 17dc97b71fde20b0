package run

import (
	"fmt"
	"slices"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Decoder turns token ids into text (the tokenizer's Decode).
type Decoder interface {
	Decode(ids []int) string
}

// maxRankSlots is how many recorded rank-classification passes the
// evaluator keeps. Each holds its program's device memory (activations of a
// whole eval batch) between evaluations; two cover a task's validation set
// (every epoch) next to one other split.
const maxRankSlots = 2

// observePredictions, when tests set it, sees the predictions (and rank
// scores) of every evaluation the runner makes.
var observePredictions func(task string, raw []tasks.Example, preds []string, scores [][]float64)

// evaluator scores examples of a task with a method's prompts.
type evaluator struct {
	m   *t5.Model
	tok interface {
		tasks.Tokenizer
		Decoder
	}
	cfg *rundir.Config
	// slots are the recorded rank passes, least recently used first.
	slots []*rankSlot
	// captures counts recorded rank passes (for tests).
	captures int
}

// release frees the recorded rank passes.
func (ev *evaluator) release() {
	for _, s := range ev.slots {
		s.release()
	}
	ev.slots = nil
}

// evaluate generates an answer for every example of exs (the examples of
// td in split) with the prompts of pr and scores them.
func (ev *evaluator) evaluate(td *taskData, raw []tasks.Example, exs []method.Example, pr method.Prompter) (metrics.Result, error) {
	preds, scores, err := ev.predict(td.task, exs, pr)
	if err != nil {
		return metrics.Result{}, err
	}
	if observePredictions != nil {
		observePredictions(td.task.Name, raw, preds, scores)
	}
	return metrics.Evaluate(td.task, raw, preds, rundir.MetricOptions(ev.cfg.PrimaryMetrics))
}

// predict returns the model's answer to every example of exs with the
// prompts of pr and, with rank decoding, every label's log-likelihood.
func (ev *evaluator) predict(t *tasks.Task, exs []method.Example, pr method.Prompter) ([]string, [][]float64, error) {
	m := ev.m
	e := m.Engine()
	wasTraining := m.Training()
	m.SetTraining(false)
	defer m.SetTraining(wasTraining)
	defer e.NoGrad()()
	cands, err := ev.candidates(t)
	if err != nil {
		return nil, nil, err
	}
	padTo := 0
	if ev.cfg.PadToMax() {
		padTo = ev.cfg.MaxInputLen
	}
	var preds []string
	var scores [][]float64
	if ev.cfg.Decode == "rank" {
		preds, scores, err = ev.rank(t, exs, pr, cands, padTo)
	} else {
		preds, err = ev.generate(t, exs, pr, padTo)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("task %s: %w", t.Name, err)
	}
	return preds, scores, nil
}

// candidates are the label words' ids for rank classification.
func (ev *evaluator) candidates(t *tasks.Task) ([][]int, error) {
	if ev.cfg.Decode != "rank" {
		return nil, nil
	}
	var out [][]int
	for _, l := range t.Labels {
		ids, err := ev.tok.Encode(l)
		if err != nil {
			return nil, fmt.Errorf("task %s: label %q: %w", t.Name, l, err)
		}
		out = append(out, ids)
	}
	return out, nil
}

// generate decodes every example with greedy or beam search, eagerly:
// both decide on the host between steps (which rows stopped, which beams
// survive), so there is no fixed sequence of ops to record.
func (ev *evaluator) generate(t *tasks.Task, exs []method.Example, pr method.Prompter, padTo int) ([]string, error) {
	m := ev.m
	preds := make([]string, 0, len(exs))
	bs := ev.cfg.EvalBatchSize
	for lo := 0; lo < len(exs); lo += bs {
		rows := exs[lo:min(lo+bs, len(exs))]
		inputs := make([][]int, len(rows))
		for i, r := range rows {
			inputs[i] = r.Input
		}
		b, err := m.NewBatch(inputs, nil, padTo, 1)
		if err != nil {
			return nil, err
		}
		out, err := ev.decodeBatch(t, &method.Batch{Examples: rows, Device: b}, pr)
		b.Release()
		if err != nil {
			return nil, err
		}
		preds = append(preds, out...)
	}
	return preds, nil
}

// decodeBatch returns the text the model produces for each row (greedy or
// beam search).
func (ev *evaluator) decodeBatch(t *tasks.Task, b *method.Batch, pr method.Prompter) ([]string, error) {
	m := ev.m
	p, err := pr.Prompt(b)
	if err != nil {
		return nil, err
	}
	enc, mask := m.EncodeBatch(b.Device, p)
	p.Release()
	defer enc.Release()
	defer mask.Release()
	if err := m.Engine().Err(); err != nil {
		return nil, err
	}
	var seqs [][]int
	if ev.cfg.Decode == "greedy" {
		seqs, err = m.Greedy(enc, mask, t.TargetLen-1, true)
	} else {
		o := t5.ReferenceBeam(t.TargetLen)
		o.NumBeams, o.RepetitionPenalty = ev.cfg.NumBeams, ev.cfg.RepetitionPenalty
		seqs, err = m.BeamSearch(enc, mask, o)
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, len(seqs))
	for i, s := range seqs {
		out[i] = ev.tok.Decode(s)
	}
	return out, nil
}

// rank returns the label of t with the highest log-likelihood for every
// example (rank classification), and every label's log-likelihood.
func (ev *evaluator) rank(t *tasks.Task, exs []method.Example, pr method.Prompter, cands [][]int, padTo int) ([]string, [][]float64, error) {
	scores, err := ev.rankScores(exs, pr, cands, padTo)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, len(scores))
	for r, row := range scores {
		out[r] = t.Labels[t5.BestCandidate(row)]
	}
	return out, scores, nil
}

// rankScores returns log p(candidate | example) [example][candidate] for
// exs, in batches of EvalBatchSize rows (fewer when exs are fewer) padded
// to one input length (the longest of exs, at least padTo), so that every
// batch of exs, and of a later evaluation of the same examples, replays
// one recorded pass.
func (ev *evaluator) rankScores(exs []method.Example, pr method.Prompter, cands [][]int, padTo int) ([][]float64, error) {
	defer ev.m.Engine().NoGrad()()
	L := padTo
	for _, x := range exs {
		L = max(L, len(x.Input))
	}
	bs := min(ev.cfg.EvalBatchSize, len(exs))
	out := make([][]float64, 0, len(exs))
	for lo := 0; lo < len(exs); lo += bs {
		rows := exs[lo:min(lo+bs, len(exs))]
		scores, err := ev.rankBatch(rows, pr, cands, bs, L)
		if err != nil {
			return nil, err
		}
		out = append(out, scores...)
	}
	return out, nil
}

// rankSlot is the recorded rank-classification pass for batches of B rows
// of L input tokens, one prompt shape and one list of candidates: the
// batch and prompt tensors it reads, the candidates and the program, which
// encodes and returns every candidate token's loss.
type rankSlot struct {
	key    rankKey
	batch  *t5.Batch
	prompt *ag.Tensor // nil without a prompt
	cands  *t5.Candidates
	prog   *ag.Program
	losses *ag.Tensor // (B·C·T,), written by prog
}

// rankKey is what a rank slot's program is specialised to.
type rankKey struct {
	B, L   int
	prompt string // the prompt's type and shape; "" for none
	cands  string
}

func (s *rankSlot) release() {
	if s.prog != nil {
		s.prog.Release()
	}
	if s.cands != nil {
		s.cands.Release()
	}
	s.prompt.Release()
	releaseBatch(s.batch)
}

func promptKey(p *ag.Tensor) string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(p.DType(), p.Shape())
}

// rankBatch scores rows (at most B) in a batch of B rows padded to L
// tokens, with a recorded pass. A short batch is filled up with copies of
// its last row, whose scores are dropped: the prompter sees B rows.
func (ev *evaluator) rankBatch(rows []method.Example, pr method.Prompter, cands [][]int, B, L int) ([][]float64, error) {
	m := ev.m
	full := rows[:len(rows):len(rows)]
	for len(full) < B {
		full = append(full, rows[len(rows)-1])
	}
	inputs := make([][]int, B)
	for i, r := range full {
		inputs[i] = r.Input
	}
	key := rankKey{B: B, L: L, cands: fmt.Sprint(cands)}
	// The prompt's shape is known once the prompter has seen the batch:
	// the rows go into the most recent slot of this size and these
	// candidates, whichever its prompt (usually the same), or into a new
	// batch for a new slot.
	sl := ev.lookup(key, false)
	var fresh *t5.Batch
	dev, err := ev.fill(sl, inputs, L)
	if sl == nil {
		fresh = dev
	}
	if err != nil {
		return nil, err
	}
	// Prompters read values on the host (an encoder query), so they run
	// eagerly, outside the program.
	p, err := pr.Prompt(&method.Batch{Examples: full, Device: dev})
	if err == nil {
		err = m.Engine().Err()
	}
	defer p.Release()
	if err != nil {
		releaseBatch(fresh)
		return nil, err
	}
	key.prompt = promptKey(p)
	if sl == nil || sl.key != key {
		if sl = ev.lookup(key, true); sl != nil {
			releaseBatch(fresh)
			if _, err := ev.fill(sl, inputs, L); err != nil {
				return nil, err
			}
		} else {
			if fresh == nil {
				if fresh, err = ev.fill(nil, inputs, L); err != nil {
					return nil, err
				}
			}
			if sl, err = ev.record(key, fresh, p, cands); err != nil {
				return nil, err
			}
		}
	}
	if p != nil {
		ag.WriteAt(sl.prompt, p, 0, 0)
	}
	if err := m.Engine().Err(); err != nil {
		return nil, err
	}
	ev.touch(sl)
	if err := sl.prog.Run(); err != nil {
		return nil, err
	}
	per, err := sl.losses.Float32s()
	if err != nil {
		return nil, err
	}
	scores, err := sl.cands.Scores(per)
	if err != nil {
		return nil, err
	}
	ev.evict()
	return scores[:len(rows)], nil
}

// fill writes inputs into sl's batch and returns it, or without a slot
// uploads them as a new batch of L tokens.
func (ev *evaluator) fill(sl *rankSlot, inputs [][]int, L int) (*t5.Batch, error) {
	if sl == nil {
		return ev.m.NewBatch(inputs, nil, L, 1)
	}
	return sl.batch, ev.m.WriteBatch(sl.batch, inputs, nil)
}

func releaseBatch(b *t5.Batch) {
	if b != nil {
		b.Release()
	}
}

// lookup returns the most recently used slot for key (with its prompt when
// withPrompt), or nil.
func (ev *evaluator) lookup(key rankKey, withPrompt bool) *rankSlot {
	for i := len(ev.slots) - 1; i >= 0; i-- {
		k := ev.slots[i].key
		if !withPrompt {
			k.prompt = key.prompt
		}
		if k == key {
			return ev.slots[i]
		}
	}
	return nil
}

// touch marks sl, a cached slot, as the most recently used.
func (ev *evaluator) touch(sl *rankSlot) {
	if i := slices.Index(ev.slots, sl); i >= 0 {
		ev.slots = append(slices.Delete(ev.slots, i, i+1), sl)
	}
}

// evict releases the least recently used slots beyond maxRankSlots.
func (ev *evaluator) evict() {
	for len(ev.slots) > maxRankSlots {
		ev.slots[0].release()
		ev.slots = slices.Delete(ev.slots, 0, 1)
	}
}

// record captures the rank pass for key on batch (which the new slot
// owns) with a prompt of p's type and shape, and adds the slot as the most
// recently used.
func (ev *evaluator) record(key rankKey, batch *t5.Batch, p *ag.Tensor, cands [][]int) (*rankSlot, error) {
	m := ev.m
	e := m.Engine()
	if p != nil && p.DType() != ag.F32 {
		releaseBatch(batch)
		return nil, fmt.Errorf("rank classification: a prompt of type %v, not float32", p.DType())
	}
	sl := &rankSlot{key: key, batch: batch}
	if p != nil {
		sl.prompt = e.Empty(ag.F32, p.Shape()...)
	}
	var err error
	if sl.cands, err = m.NewCandidates(key.B, cands); err != nil {
		sl.release()
		return nil, err
	}
	sl.prog, err = e.Capture(func() error {
		enc, mask := m.EncodeBatch(batch, sl.prompt)
		losses, err := m.CandidateLosses(enc, mask, sl.cands)
		enc.Release()
		mask.Release()
		sl.losses = losses
		return err
	})
	if err != nil {
		sl.release()
		return nil, fmt.Errorf("recording rank classification of %d rows of %d tokens: %w", key.B, key.L, err)
	}
	ev.captures++
	ev.slots = append(ev.slots, sl)
	return sl, nil
}
