package t5

import (
	"fmt"
	"math"
	"sort"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// BeamOptions are the settings of beam search, with HF generate's meaning.
type BeamOptions struct {
	NumBeams int
	// MaxLength bounds the output length, counting the decoder start token
	// (HF's max_length for encoder-decoder models).
	MaxLength int
	// RepetitionPenalty divides the (log-)scores of tokens already in a
	// beam when positive and multiplies them when negative (1: off).
	RepetitionPenalty float64
	// LengthPenalty is the exponent of the length a finished hypothesis's
	// score is divided by.
	LengthPenalty float64
	// EarlyStopping ends a row as soon as NumBeams hypotheses are finished.
	EarlyStopping bool
}

// ReferenceBeam is what the SHLPT reference code passes to generate for
// task of target length maxLength.
func ReferenceBeam(maxLength int) BeamOptions {
	return BeamOptions{NumBeams: 4, MaxLength: maxLength, RepetitionPenalty: 2.5, LengthPenalty: 1, EarlyStopping: true}
}

// hypothesis is a finished beam: its tokens (with the start id, without
// </s>) and its length-normalized score.
type hypothesis struct {
	score  float64
	tokens []int
}

// hypotheses keeps the NumBeams best finished beams of one row
// (HF's BeamHypotheses).
type hypotheses struct {
	o     BeamOptions
	beams []hypothesis
	worst float64
}

func (h *hypotheses) add(tokens []int, sumLogProbs float64) {
	score := sumLogProbs / math.Pow(float64(len(tokens)), h.o.LengthPenalty)
	if len(h.beams) < h.o.NumBeams || score > h.worst {
		h.beams = append(h.beams, hypothesis{score: score, tokens: append([]int(nil), tokens...)})
		if len(h.beams) > h.o.NumBeams {
			wi := 0
			for i, b := range h.beams {
				if b.score < h.beams[wi].score {
					wi = i
				}
			}
			h.beams = append(h.beams[:wi], h.beams[wi+1:]...)
			h.worst = math.Inf(1)
			for _, b := range h.beams {
				h.worst = math.Min(h.worst, b.score)
			}
		} else if len(h.beams) == 1 {
			h.worst = score
		} else {
			h.worst = math.Min(score, h.worst)
		}
	}
}

func (h *hypotheses) done(bestSumLogProbs float64, curLen int) bool {
	if len(h.beams) < h.o.NumBeams {
		return false
	}
	if h.o.EarlyStopping {
		return true
	}
	return h.worst >= bestSumLogProbs/math.Pow(float64(curLen), h.o.LengthPenalty)
}

// BeamSearch decodes each row of the encoder output with beam search as HF
// generate (transformers 4.26) does for encoder-decoder models: log-softmax
// scores, then the repetition penalty on them, beam scores added, the
// 2·NumBeams best continuations kept, </s> ending hypotheses, stopping at
// MaxLength. It returns, per row, the best sequence with the start id
// first and </s> appended when it ended early.
func (m *Model) BeamSearch(enc, encMask *ag.Tensor, o BeamOptions) ([][]int, error) {
	opts := make([]BeamOptions, enc.Dim(0))
	for b := range opts {
		opts[b] = o
	}
	return m.BeamSearchRows(enc, encMask, opts)
}

// BeamSearchRows is BeamSearch with options of each row's own (one number
// of beams for all): a row ends at its own MaxLength and gets what
// BeamSearch with its options gives it alone.
func (m *Model) BeamSearchRows(enc, encMask *ag.Tensor, opts []BeamOptions) ([][]int, error) {
	e := m.e
	defer e.NoGrad()()
	if len(opts) == 0 || len(opts) != enc.Dim(0) {
		return nil, fmt.Errorf("t5: beam search of %d rows with options for %d", enc.Dim(0), len(opts))
	}
	maxLen := 0
	for _, o := range opts {
		if o.NumBeams < 1 || o.MaxLength < 2 {
			return nil, fmt.Errorf("t5: beam search needs NumBeams ≥ 1 and MaxLength ≥ 2, got %+v", o)
		}
		if o.NumBeams != opts[0].NumBeams {
			return nil, fmt.Errorf("t5: beam search rows with %d and %d beams", opts[0].NumBeams, o.NumBeams)
		}
		maxLen = max(maxLen, o.MaxLength)
	}
	B, K, V := enc.Dim(0), opts[0].NumBeams, m.Config.VocabSize
	eos, pad := m.Config.EOSTokenID, m.Config.PadTokenID
	// Every beam gets its own copy of its row's encoder output.
	expand := make([]int32, B*K)
	for i := range expand {
		expand[i] = int32(i / K)
	}
	encK := repeatRows(enc, expand)
	maskK := repeatRows(encMask, expand)
	st, err := m.newDecodeState(encK, maskK, maxLen)
	release(encK, maskK)
	if err != nil {
		return nil, err
	}
	defer st.release()

	seqs := make([][]int, B*K)
	scores := make([]float64, B*K)
	for i := range seqs {
		seqs[i] = []int{m.Config.DecoderStartTokenID}
		if i%K != 0 {
			scores[i] = -1e9 // only the first beam is live at the start
		}
	}
	hyps := make([]hypotheses, B)
	for b := range hyps {
		hyps[b].o = opts[b]
	}
	done := make([]bool, B)
	// finish ends row b at its MaxLength (or at the end): its live beams
	// become hypotheses.
	finish := func(b int) {
		for j := 0; j < K; j++ {
			hyps[b].add(seqs[b*K+j], scores[b*K+j])
		}
		done[b] = true
	}
	for curLen := 1; curLen < maxLen; curLen++ {
		for b := range done {
			if !done[b] && curLen >= opts[b].MaxLength {
				finish(b)
			}
		}
		last := make([]int, B*K)
		for i, s := range seqs {
			last[i] = s[len(s)-1]
		}
		logits, err := st.step(last)
		if err != nil {
			return nil, err
		}
		newSeqs := make([][]int, B*K)
		newScores := make([]float64, B*K)
		order := make([]int32, B*K)
		for b := 0; b < B; b++ {
			if done[b] {
				for j := 0; j < K; j++ {
					i := b*K + j
					newSeqs[i] = append(append([]int(nil), seqs[i]...), pad)
					order[i] = int32(i)
				}
				continue
			}
			// The 2K best continuations, highest first; ties go to the lower
			// beam, then the lower token (the order of a stable sort).
			top := topK{n: 2 * K}
			for j := 0; j < K; j++ {
				i := b*K + j
				lp := logSoftmax(logits[i*V : (i+1)*V])
				if o := opts[b]; o.RepetitionPenalty != 1 {
					seen := map[int]bool{}
					for _, t := range seqs[i] {
						if seen[t] {
							continue
						}
						seen[t] = true
						if lp[t] < 0 {
							lp[t] *= o.RepetitionPenalty
						} else {
							lp[t] /= o.RepetitionPenalty
						}
					}
				}
				for v, s := range lp {
					top.offer(cand{score: s + scores[i], token: v, beam: j})
				}
			}
			cands := top.c
			next := 0
			for rank, c := range cands {
				src := b*K + c.beam
				if c.token == eos {
					if rank >= K {
						continue
					}
					hyps[b].add(seqs[src], c.score)
				} else {
					i := b*K + next
					newSeqs[i] = append(append([]int(nil), seqs[src]...), c.token)
					newScores[i] = c.score
					order[i] = int32(src)
					next++
				}
				if next == K {
					break
				}
			}
			done[b] = done[b] || hyps[b].done(cands[0].score, curLen)
		}
		seqs, scores = newSeqs, newScores
		if err := st.reorder(order); err != nil {
			return nil, err
		}
		all := true
		for _, d := range done {
			all = all && d
		}
		if all {
			break
		}
	}
	out := make([][]int, B)
	for b := 0; b < B; b++ {
		if !done[b] {
			finish(b)
		}
		best := hyps[b].beams
		sort.SliceStable(best, func(x, y int) bool { return best[x].score < best[y].score })
		toks := append([]int(nil), best[len(best)-1].tokens...)
		if len(toks) < opts[b].MaxLength {
			toks = append(toks, eos)
		}
		out[b] = toks
	}
	return out, nil
}

// cand is a continuation of a beam by one token.
type cand struct {
	score float64
	token int
	beam  int
}

// before orders candidates: higher score first, then lower beam, then lower
// token.
func (c cand) before(d cand) bool {
	if c.score != d.score {
		return c.score > d.score
	}
	if c.beam != d.beam {
		return c.beam < d.beam
	}
	return c.token < d.token
}

// topK keeps the n first candidates in before's order, sorted: selecting
// 2K of K·V (K·32128) continuations without sorting them all.
type topK struct {
	n int
	c []cand
}

func (t *topK) offer(x cand) {
	if len(t.c) == t.n && !x.before(t.c[t.n-1]) {
		return
	}
	i := sort.Search(len(t.c), func(k int) bool { return x.before(t.c[k]) })
	if len(t.c) < t.n {
		t.c = append(t.c, cand{})
	}
	copy(t.c[i+1:], t.c[i:len(t.c)-1])
	t.c[i] = x
}

func logSoftmax(x []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	s := 0.0
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	lse := m + math.Log(s)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - lse
	}
	return out
}

// repeatRows gathers rows of x (N, ...) by index: (len(idx), ...).
func repeatRows(x *ag.Tensor, idx []int32) *ag.Tensor {
	e := x.Engine()
	shape := x.Shape()
	rowLen := x.Len() / shape[0]
	flat := x.Reshape(shape[0], rowLen)
	ids := e.FromInt32(idx, len(idx))
	g := ag.Embedding(flat, ids)
	release(flat, ids)
	shape[0] = len(idx)
	out := g.Reshape(shape...)
	g.Release()
	return out
}
