package t5

import (
	"fmt"
	"math"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// ScoreCandidates ranks label strings by log-likelihood (rank
// classification): for every row b of the encoder output and every
// candidate target (token ids ending with </s>), it returns
// log p(candidate | input b), the sum of the candidate's token
// log-probabilities under teacher forcing. All rows × candidates go through
// the decoder in one batched pass. The result is [row][candidate].
//
// It is NewCandidates, CandidateLosses and Candidates.Scores in a row; a
// caller that scores many batches of one size records CandidateLosses once
// and replays it.
func (m *Model) ScoreCandidates(enc, encMask *ag.Tensor, candidates [][]int) ([][]float64, error) {
	c, err := m.NewCandidates(enc.Dim(0), candidates)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	per, err := m.CandidateLosses(enc, encMask, c)
	if err != nil {
		return nil, err
	}
	v, err := per.Float32s()
	per.Release()
	if err != nil {
		return nil, err
	}
	return c.Scores(v)
}

// Candidates are rank-classification targets laid out on the device for
// batches of B rows: every row × candidate's decoder ids and labels, built
// on the host once, so that CandidateLosses uploads nothing and can be
// recorded into a program.
type Candidates struct {
	B, T   int        // rows, longest candidate
	counts []int      // candidates of each row
	dec    *ag.Tensor // (ΣC, T) int32: the labels shifted right after the start id
	labels *ag.Tensor // (ΣC·T,) int32: candidate ids, IgnoreIndex past a candidate's end
	expand *ag.Tensor // (ΣC,) int32: the encoder row of each decoder row
}

// NewCandidates uploads candidates (token ids ending with </s>) for
// batches of B rows.
func (m *Model) NewCandidates(B int, candidates [][]int) (*Candidates, error) {
	if B < 1 {
		return nil, fmt.Errorf("t5: candidates for %d rows", B)
	}
	rows := make([][][]int, B)
	for b := range rows {
		rows[b] = candidates
	}
	return m.NewRowCandidates(rows, 0)
}

// NewRowCandidates uploads candidates of each row's own (rows of
// different tasks score different label words), padded to the longest
// candidate or to padTo tokens when longer. Past a candidate's end the
// token losses are 0, so a row's scores do not depend on the others.
func (m *Model) NewRowCandidates(rows [][][]int, padTo int) (*Candidates, error) {
	e := m.e
	B := len(rows)
	if B == 0 {
		return nil, fmt.Errorf("t5: candidates for 0 rows")
	}
	T, n := padTo, 0
	counts := make([]int, B)
	for b, cands := range rows {
		if len(cands) == 0 {
			return nil, fmt.Errorf("t5: no candidates to score for row %d", b)
		}
		for i, c := range cands {
			if len(c) == 0 {
				return nil, fmt.Errorf("t5: row %d: candidate %d is empty", b, i)
			}
			T = max(T, len(c))
		}
		counts[b] = len(cands)
		n += len(cands)
	}
	V := m.Config.VocabSize
	labels := make([]int32, n*T)
	dec := make([]int32, n*T)
	expand := make([]int32, n)
	k := 0
	for b, cands := range rows {
		for ci, c := range cands {
			row := k * T
			for j := 0; j < T; j++ {
				l := int32(IgnoreIndex)
				if j < len(c) {
					if c[j] < 0 || c[j] >= V {
						return nil, fmt.Errorf("t5: row %d: candidate %d: id %d outside the vocabulary of %d", b, ci, c[j], V)
					}
					l = int32(c[j])
				}
				labels[row+j] = l
			}
			dec[row] = int32(m.Config.DecoderStartTokenID)
			for j := 1; j < T; j++ {
				p := labels[row+j-1]
				if p == IgnoreIndex {
					p = int32(m.Config.PadTokenID)
				}
				dec[row+j] = p
			}
			expand[k] = int32(b)
			k++
		}
	}
	c := &Candidates{B: B, T: T, counts: counts,
		dec: e.FromInt32(dec, n, T), labels: e.FromInt32(labels, n*T), expand: e.FromInt32(expand, n)}
	if err := e.Err(); err != nil {
		c.Release()
		return nil, err
	}
	return c, nil
}

// Release frees the candidates' device tensors.
func (c *Candidates) Release() { release(c.dec, c.labels, c.expand) }

// CandidateLosses records the teacher-forced loss of every candidate token
// for every row of enc (B, L, d) with additive mask encMask (B, L): a
// (ΣC·T,) tensor laid out [row][candidate][position], 0 past a
// candidate's end. It reads no values, so it can be recorded by Capture.
func (m *Model) CandidateLosses(enc, encMask *ag.Tensor, c *Candidates) (*ag.Tensor, error) {
	e := m.e
	defer e.NoGrad()()
	if enc.Rank() != 3 || enc.Dim(0) != c.B || encMask.Rank() != 2 || encMask.Dim(0) != c.B {
		return nil, fmt.Errorf("t5: candidates for %d rows scored against encoder output %v and mask %v", c.B, enc, encMask)
	}
	// Each row's encoder output once per candidate: (B·C, L, d).
	encC := gatherRows(enc, c.expand)
	maskC := gatherRows(encMask, c.expand)
	m.beginPass()
	h, _ := m.decode(c.dec, encC, maskC, false)
	logits := m.logits(h)
	release(h, encC, maskC)
	per := ag.CrossEntropyRows(logits, c.labels) // (B·C·T,): each token's loss
	logits.Release()
	if err := e.Err(); err != nil {
		per.Release()
		return nil, err
	}
	return per, nil
}

// Scores sums per-token losses per (ΣC·T,) from CandidateLosses into
// log-likelihoods [row][candidate].
func (c *Candidates) Scores(per []float32) ([][]float64, error) {
	n := 0
	for _, k := range c.counts {
		n += k
	}
	T := c.T
	if len(per) != n*T {
		return nil, fmt.Errorf("t5: %d token losses for %d candidates of %d rows × %d tokens", len(per), n, c.B, T)
	}
	out := make([][]float64, c.B)
	k := 0
	for b := range out {
		out[b] = make([]float64, c.counts[b])
		for ci := range out[b] {
			s := 0.0
			for j := 0; j < T; j++ {
				s -= float64(per[k*T+j])
			}
			out[b][ci] = s
			k++
		}
	}
	return out, nil
}

// gatherRows returns x's rows idx (on the device, int32) along axis 0:
// repeatRows with the indices already uploaded.
func gatherRows(x, idx *ag.Tensor) *ag.Tensor {
	shape := x.Shape()
	flat := x.Reshape(shape[0], x.Len()/shape[0])
	g := ag.Embedding(flat, idx)
	flat.Release()
	shape[0] = idx.Len()
	out := g.Reshape(shape...)
	g.Release()
	return out
}

// BestCandidate is the index of the highest score of a row of Scores (the
// first of equal ones): the candidate rank classification predicts.
func BestCandidate(scores []float64) int {
	best, bestScore := 0, math.Inf(-1)
	for c, s := range scores {
		if s > bestScore {
			best, bestScore = c, s
		}
	}
	return best
}
