package t5

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// EncodeBatch runs the encoder without gradients on a batch (with prompt
// when not nil: (Lp, d) shared by every row or (B, Lp, d) one per row), for
// decoding. It returns the encoder output and the additive key mask of the
// encoder positions.
func (m *Model) EncodeBatch(b *Batch, prompt *ag.Tensor) (enc, mask *ag.Tensor) {
	defer m.e.NoGrad()()
	m.beginPass()
	return m.Encode(b.InputIDs, b.InputMask, prompt)
}

// Greedy decodes from the decoder start id for steps tokens, taking the
// most likely token at each step, as HF generate with num_beams=1. Each
// row's ids start with the start id. With stopAtEOS, a row stops after
// </s> and is padded with the pad id, and decoding ends when every row
// has stopped.
func (m *Model) Greedy(enc, encMask *ag.Tensor, steps int, stopAtEOS bool) ([][]int, error) {
	e := m.e
	defer e.NoGrad()()
	B := enc.Dim(0)
	seqs := make([][]int, B)
	done := make([]bool, B)
	for b := range seqs {
		seqs[b] = []int{m.Config.DecoderStartTokenID}
	}
	st, err := m.newDecodeState(enc, encMask, steps+1)
	if err != nil {
		return nil, err
	}
	defer st.release()
	for t := 0; t < steps; t++ {
		last := make([]int, B)
		for b := range seqs {
			last[b] = seqs[b][t]
		}
		logits, err := st.step(last)
		if err != nil {
			return nil, err
		}
		V := m.Config.VocabSize
		allDone := true
		for b := 0; b < B; b++ {
			if done[b] {
				seqs[b] = append(seqs[b], m.Config.PadTokenID)
				continue
			}
			row := logits[b*V : (b+1)*V]
			best := 0
			for v := 1; v < V; v++ {
				if row[v] > row[best] {
					best = v
				}
			}
			seqs[b] = append(seqs[b], best)
			if stopAtEOS && best == m.Config.EOSTokenID {
				done[b] = true
			}
			allDone = allDone && done[b]
		}
		if stopAtEOS && allDone {
			break
		}
	}
	return seqs, nil
}

// decodeState holds an incremental decoder: the encoder's keys and values
// for cross-attention, computed once, and the self-attention keys and
// values of the positions decoded so far (a key/value cache).
type decodeState struct {
	m       *Model
	rows    int
	maxLen  int
	pos     int
	encMask *ag.Tensor
	crossK  []*ag.Tensor // per layer (rows, H, Lenc, D)
	crossV  []*ag.Tensor
	selfK   []*ag.Tensor // per layer (rows, H, maxLen, D)
	selfV   []*ag.Tensor
}

func (st *decodeState) release() {
	release(st.encMask)
	for _, l := range [][]*ag.Tensor{st.crossK, st.crossV, st.selfK, st.selfV} {
		release(l...)
	}
}

func (m *Model) newDecodeState(enc, encMask *ag.Tensor, maxLen int) (*decodeState, error) {
	e := m.e
	if enc.Rank() != 3 || enc.Dim(2) != m.Config.DModel || !sameShape(encMask.Shape(), enc.Shape()[:2]) {
		return nil, fmt.Errorf("t5: encoder output %v and mask %v do not fit (B, L, %d) and (B, L)", enc, encMask, m.Config.DModel)
	}
	st := &decodeState{m: m, rows: enc.Dim(0), maxLen: maxLen, encMask: encMask.Reshape(encMask.Shape()...)}
	H, D := m.Config.NumHeads, m.Config.DKV
	for i := range m.Decoder.Blocks {
		b := &m.Decoder.Blocks[i]
		st.crossK = append(st.crossK, splitHeads(ag.Linear(enc, b.Cross.K), H))
		st.crossV = append(st.crossV, splitHeads(ag.Linear(enc, b.Cross.V), H))
		st.selfK = append(st.selfK, e.Zeros(st.rows, H, maxLen, D))
		st.selfV = append(st.selfV, e.Zeros(st.rows, H, maxLen, D))
	}
	if err := e.Err(); err != nil {
		st.release()
		return nil, err
	}
	return st, nil
}

// step feeds one token per row at the next position and returns the
// logits (rows × vocab) of that position.
func (st *decodeState) step(tokens []int) ([]float32, error) {
	m := st.m
	e := m.e
	c := &m.Config
	if st.pos >= st.maxLen {
		return nil, fmt.Errorf("t5: decoding past the cache length %d", st.maxLen)
	}
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		ids[i] = int32(t)
	}
	idt := e.FromInt32(ids, st.rows, 1)
	x := ag.Embedding(m.Shared, idt)
	idt.Release()
	t := st.pos
	bias := ag.RelPosBias(m.Decoder.RelBias, 1, t+1, t, false, c.RelativeAttentionNumBuckets, c.RelativeAttentionMaxDistance)
	eps := float32(c.LayerNormEpsilon)
	for i := range m.Decoder.Blocks {
		b := &m.Decoder.Blocks[i]
		n := ag.RMSNorm(x, b.SelfNorm, eps)
		a := st.selfAttention(i, b, n, bias)
		n.Release()
		x = m.residual(x, a)
		n = ag.RMSNorm(x, b.CrossNorm, eps)
		a = st.crossAttention(i, b, n)
		n.Release()
		x = m.residual(x, a)
		n = ag.RMSNorm(x, b.FFNorm, eps)
		f := m.feedForward(&b.FF, n, nil)
		n.Release()
		x = m.residual(x, f)
	}
	bias.Release()
	h := ag.RMSNorm(x, m.Decoder.FinalNorm, eps)
	x.Release()
	logits := m.logits(h)
	h.Release()
	v, err := logits.Float32s()
	logits.Release()
	if err != nil {
		return nil, err
	}
	st.pos++
	return v, nil
}

// selfAttention attends from the new position to the cached positions
// 0..pos after writing the position's key and value into the cache.
// n is (rows, 1, d); bias is (H, 1, pos+1).
func (st *decodeState) selfAttention(layer int, b *Block, n, bias *ag.Tensor) *ag.Tensor {
	m := st.m
	H, D := m.Config.NumHeads, m.Config.DKV
	// One position's projections (rows, 1, H·D) are (rows, H, 1, D).
	heads := func(w *ag.Tensor) *ag.Tensor {
		lin := ag.Linear(n, w)
		x := lin.Reshape(st.rows, H, 1, D)
		lin.Release()
		return x
	}
	q, k, v := heads(b.Self.Q), heads(b.Self.K), heads(b.Self.V)
	// The cache is (rows, H, maxLen, D): position pos of every head.
	ck, cv := st.selfK[layer], st.selfV[layer]
	ag.WriteAt(ck, k, 2, st.pos)
	ag.WriteAt(cv, v, 2, st.pos)
	release(k, v)
	scores := ag.MatMulRows(q, ck, false, true, st.pos+1) // (rows, H, 1, pos+1)
	q.Release()
	probs := ag.Softmax(scores, bias, nil, false)
	scores.Release()
	ctx := ag.MatMulRows(probs, cv, false, false, st.pos+1) // (rows, H, 1, D)
	probs.Release()
	flat := ctx.Reshape(st.rows, 1, H*D)
	ctx.Release()
	out := ag.Linear(flat, b.Self.O)
	flat.Release()
	return out
}

// crossAttention attends from the new position to the encoder output.
func (st *decodeState) crossAttention(layer int, b *Block, n *ag.Tensor) *ag.Tensor {
	m := st.m
	H, D := m.Config.NumHeads, m.Config.DKV
	lin := ag.Linear(n, b.Cross.Q)
	q := lin.Reshape(st.rows, H, 1, D)
	lin.Release()
	scores := ag.MatMul(q, st.crossK[layer], false, true) // (rows, H, 1, Lenc)
	q.Release()
	probs := ag.Softmax(scores, nil, st.encMask, false)
	scores.Release()
	ctx := ag.MatMul(probs, st.crossV[layer], false, false) // (rows, H, 1, D)
	probs.Release()
	flat := ctx.Reshape(st.rows, 1, H*D)
	ctx.Release()
	out := ag.Linear(flat, b.Cross.O)
	flat.Release()
	return out
}

// reorder makes row i of the self-attention cache the former row order[i]
// (beams that continue another beam's sequence take over its cache).
func (st *decodeState) reorder(order []int32) error {
	identity := true
	for i, o := range order {
		identity = identity && int(o) == i
	}
	if identity {
		return nil
	}
	for l := range st.selfK {
		for _, c := range []*[]*ag.Tensor{&st.selfK, &st.selfV} {
			old := (*c)[l]
			(*c)[l] = repeatRows(old, order)
			old.Release()
		}
	}
	return st.m.e.Err()
}
