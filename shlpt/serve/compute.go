package serve

import (
	"context"
	"fmt"
	"sort"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// jobKind says what a row asks for.
type jobKind int

const (
	classify jobKind = iota // rank scores over the task's label words
	complete                // generation with the task's decoding
)

// job is one row of work: one input of a request.
type job struct {
	ctx       context.Context
	task      *Task
	ids       []int // input ids ending with </s>, cut to the task's input length
	kind      jobKind
	maxTokens int // completion: tokens to generate at most
	// The worker fills these, then calls done.
	res  result
	done func()
}

// result is what a row gets.
type result struct {
	// Completion: the generated ids (without the start id) and whether
	// </s> ended them.
	ids     []int
	stopped bool
	// Rank: every label's log-likelihood and the best label.
	scores []float64
	label  int
	err    error
}

// decodeGroup orders rows in a batch: rank rows, greedy rows, then beam
// rows by their number of beams, so that each decoding reads a contiguous
// range of the encoder's output.
func (j *job) decodeGroup() int {
	switch {
	case j.kind == classify || j.task.Card.Decode == "rank":
		return 0
	case j.task.Card.Decode == "greedy":
		return 1
	}
	return 1 + j.task.Card.NumBeams
}

// compute runs one batch on the model: one encoder pass over every row
// (each with its task's prompt), rank scoring for the rank rows, greedy
// and beam search for the others. Rows are results-independent: a row's
// answer does not depend on the rows beside it.
func (s *Server) compute(jobs []*job) error {
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].decodeGroup() < jobs[b].decodeGroup() })
	m := s.model
	e := m.Engine()
	defer e.NoGrad()()
	rows := make([]t5.PromptRow, len(jobs))
	for i, j := range jobs {
		rows[i] = t5.PromptRow{Offset: j.task.Offset, Len: j.task.Len, Input: j.ids}
	}
	enc, mask, release, err := s.encode(rows)
	if err != nil {
		return err
	}
	defer release()
	T, d := enc.Dim(1), enc.Dim(2)
	for lo := 0; lo < len(jobs); {
		g := jobs[lo].decodeGroup()
		hi := lo
		for hi < len(jobs) && jobs[hi].decodeGroup() == g {
			hi++
		}
		n := hi - lo
		encG := enc.View(lo*T*d, n, T, d)
		maskG := mask.View(lo*T, n, T)
		group := jobs[lo:hi]
		switch {
		case g == 0:
			err = s.rank(group, encG, maskG)
		case g == 1:
			err = s.greedy(group, encG, maskG)
		default:
			err = s.beam(group, encG, maskG)
		}
		encG.Release()
		maskG.Release()
		if err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// encode runs the encoder on rows, eagerly or through a recorded program
// of the rows' shape bucket. release frees what it returns.
func (s *Server) encode(rows []t5.PromptRow) (enc, mask *ag.Tensor, release func(), err error) {
	if s.programs != nil {
		return s.programs.encode(rows)
	}
	m := s.model
	rb, err := m.NewRowBatch(rows, 0, s.table.Dim(0))
	if err != nil {
		return nil, nil, nil, err
	}
	enc, mask = m.EncodeRows(s.table, rb)
	rb.Release()
	if err := m.Engine().Err(); err != nil {
		enc.Release()
		mask.Release()
		return nil, nil, nil, err
	}
	return enc, mask, func() { enc.Release(); mask.Release() }, nil
}

// rank scores every label word of each row's task.
func (s *Server) rank(jobs []*job, enc, mask *ag.Tensor) error {
	m := s.model
	cands := make([][][]int, len(jobs))
	for i, j := range jobs {
		if len(j.task.labelIDs) == 0 {
			return fmt.Errorf("task %s has no label words", j.task.Card.Task)
		}
		cands[i] = j.task.labelIDs
	}
	c, err := m.NewRowCandidates(cands, 0)
	if err != nil {
		return err
	}
	defer c.Release()
	per, err := m.CandidateLosses(enc, mask, c)
	if err != nil {
		return err
	}
	v, err := per.Float32s()
	per.Release()
	if err != nil {
		return err
	}
	scores, err := c.Scores(v)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		best := t5.BestCandidate(scores[i])
		j.res.scores, j.res.label = scores[i], best
		j.res.stopped = true // a rank-decoded completion is its best label, as eval's prediction
	}
	return nil
}

// greedy decodes rows greedily, each for its own number of tokens.
func (s *Server) greedy(jobs []*job, enc, mask *ag.Tensor) error {
	steps := 0
	for _, j := range jobs {
		steps = max(steps, j.maxTokens)
	}
	seqs, err := s.model.Greedy(enc, mask, steps, true)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		s.finish(j, seqs[i][:min(len(seqs[i]), j.maxTokens+1)])
	}
	return nil
}

// beam decodes rows with beam search (one number of beams), each with its
// task's settings and its own length.
func (s *Server) beam(jobs []*job, enc, mask *ag.Tensor) error {
	opts := make([]t5.BeamOptions, len(jobs))
	for i, j := range jobs {
		o := t5.ReferenceBeam(j.maxTokens + 1)
		o.NumBeams, o.RepetitionPenalty = j.task.Card.NumBeams, j.task.Card.RepetitionPenalty
		opts[i] = o
	}
	seqs, err := s.model.BeamSearchRows(enc, mask, opts)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		s.finish(j, seqs[i])
	}
	return nil
}

// finish keeps a decoded sequence (start id first): the ids up to and
// without </s>, and whether </s> came.
func (s *Server) finish(j *job, seq []int) {
	eos := s.model.Config.EOSTokenID
	ids := seq[1:]
	for k, id := range ids {
		if id == eos {
			j.res.ids, j.res.stopped = ids[:k], true
			return
		}
	}
	j.res.ids = ids
}
