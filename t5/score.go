package t5

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// ScoreCandidates ranks label strings by log-likelihood (rank
// classification): for every row b of the encoder output and every
// candidate target (token ids ending with </s>), it returns
// log p(candidate | input b), the sum of the candidate's token
// log-probabilities under teacher forcing. All rows × candidates go through
// the decoder in one batched pass. The result is [row][candidate].
func (m *Model) ScoreCandidates(enc, encMask *ag.Tensor, candidates [][]int) ([][]float64, error) {
	e := m.e
	defer e.NoGrad()()
	B, C := enc.Dim(0), len(candidates)
	if C == 0 {
		return nil, fmt.Errorf("t5: no candidates to score")
	}
	T := 0
	for i, c := range candidates {
		if len(c) == 0 {
			return nil, fmt.Errorf("t5: candidate %d is empty", i)
		}
		if len(c) > T {
			T = len(c)
		}
	}
	V := m.Config.VocabSize
	labels := make([]int32, B*C*T)
	dec := make([]int32, B*C*T)
	for b := 0; b < B; b++ {
		for ci, c := range candidates {
			row := (b*C + ci) * T
			for j := 0; j < T; j++ {
				l := int32(IgnoreIndex)
				if j < len(c) {
					if c[j] < 0 || c[j] >= V {
						return nil, fmt.Errorf("t5: candidate %d: id %d outside the vocabulary of %d", ci, c[j], V)
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
		}
	}
	expand := make([]int32, B*C)
	for i := range expand {
		expand[i] = int32(i / C)
	}
	encC := repeatRows(enc, expand)
	maskC := repeatRows(encMask, expand)
	decIDs := e.FromInt32(dec, B*C, T)
	lab := e.FromInt32(labels, B*C*T)
	m.beginPass()
	h, _ := m.decode(decIDs, encC, maskC, false)
	logits := m.logits(h)
	release(h, encC, maskC, decIDs)
	rows := ag.CrossEntropyRows(logits, lab) // (B·C·T,): each token's loss
	release(logits, lab)
	per, err := rows.Float32s()
	rows.Release()
	if err != nil {
		return nil, err
	}
	out := make([][]float64, B)
	for b := range out {
		out[b] = make([]float64, C)
		for ci := range candidates {
			s := 0.0
			for j := 0; j < T; j++ {
				s -= float64(per[(b*C+ci)*T+j])
			}
			out[b][ci] = s
		}
	}
	return out, nil
}
