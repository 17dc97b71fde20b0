package run

import (
	"fmt"
	"math"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Decoder turns token ids into text (the tokenizer's Decode).
type Decoder interface {
	Decode(ids []int) string
}

// evaluator scores examples of a task with a method's prompts.
type evaluator struct {
	m   *t5.Model
	tok interface {
		tasks.Tokenizer
		Decoder
	}
	cfg *Config
}

// evaluate generates an answer for every example of exs (the examples of
// td in split) with the prompts of pr and scores them.
func (ev *evaluator) evaluate(td *taskData, raw []tasks.Example, exs []method.Example, pr method.Prompter) (metrics.Result, error) {
	m := ev.m
	e := m.Engine()
	wasTraining := m.Training()
	m.SetTraining(false)
	defer m.SetTraining(wasTraining)
	defer e.NoGrad()()
	cands, err := ev.candidates(td.task)
	if err != nil {
		return metrics.Result{}, err
	}
	preds := make([]string, 0, len(exs))
	bs := ev.cfg.EvalBatchSize
	padTo := 0
	if ev.cfg.padToMax() {
		padTo = ev.cfg.MaxInputLen
	}
	for lo := 0; lo < len(exs); lo += bs {
		rows := exs[lo:min(lo+bs, len(exs))]
		inputs := make([][]int, len(rows))
		for i, r := range rows {
			inputs[i] = r.Input
		}
		b, err := m.NewBatch(inputs, nil, padTo, 1)
		if err != nil {
			return metrics.Result{}, err
		}
		out, err := ev.decodeBatch(td.task, &method.Batch{Examples: rows, Device: b}, pr, cands)
		b.Release()
		if err != nil {
			return metrics.Result{}, fmt.Errorf("task %s: %w", td.task.Name, err)
		}
		preds = append(preds, out...)
	}
	return metrics.Evaluate(td.task, raw, preds, metrics.Options{Reference: ev.cfg.ReferenceMetrics})
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

// decodeBatch returns the text the model produces for each row.
func (ev *evaluator) decodeBatch(t *tasks.Task, b *method.Batch, pr method.Prompter, cands [][]int) ([]string, error) {
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
	switch ev.cfg.Decode {
	case "rank":
		scores, err := m.ScoreCandidates(enc, mask, cands)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(scores))
		for r, row := range scores {
			best, bestScore := 0, math.Inf(-1)
			for c, s := range row {
				if s > bestScore {
					best, bestScore = c, s
				}
			}
			out[r] = t.Labels[best]
		}
		return out, nil
	case "greedy":
		seqs, err = m.Greedy(enc, mask, t.TargetLen-1, true)
	default:
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
