package t5

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// IgnoreIndex marks label positions that do not count in the loss.
const IgnoreIndex = -100

// NewBatch uploads a batch built on the host. inputs are token ids per row
// (each ending with </s>, unpadded); targets are label ids per row, or nil
// for no labels. Inputs are right-padded with the pad id to the longest row
// (or to padTo when larger); targets are padded with -100 to the longest
// target (or targetLen when larger), and the decoder inputs are the labels
// shifted right after the decoder start id, with -100 turned into the pad id.
// Every id is checked against the vocabulary.
func (m *Model) NewBatch(inputs, targets [][]int, padTo, targetLen int) (*Batch, error) {
	c := &m.Config
	B := len(inputs)
	if B == 0 {
		return nil, fmt.Errorf("t5: empty batch")
	}
	if targets != nil && len(targets) != B {
		return nil, fmt.Errorf("t5: %d inputs but %d targets", B, len(targets))
	}
	L := padTo
	for _, r := range inputs {
		if len(r) > L {
			L = len(r)
		}
	}
	if L == 0 {
		return nil, fmt.Errorf("t5: every input row is empty")
	}
	ids := make([]int32, B*L)
	mask := make([]float32, B*L)
	for b, r := range inputs {
		for j := 0; j < L; j++ {
			if j < len(r) {
				if r[j] < 0 || r[j] >= c.VocabSize {
					return nil, fmt.Errorf("t5: input row %d position %d: id %d outside the vocabulary of %d", b, j, r[j], c.VocabSize)
				}
				ids[b*L+j] = int32(r[j])
			} else {
				ids[b*L+j] = int32(c.PadTokenID)
				mask[b*L+j] = MaskNeg
			}
		}
		if len(r) == 0 {
			return nil, fmt.Errorf("t5: input row %d is empty", b)
		}
	}
	e := m.e
	batch := &Batch{InputIDs: e.FromInt32(ids, B, L), InputMask: e.FromFloat32(mask, B, L)}
	T := targetLen
	if targets == nil {
		if T == 0 {
			T = 1
		}
		dec := make([]int32, B*T)
		for i := range dec {
			dec[i] = int32(c.DecoderStartTokenID)
		}
		batch.DecoderInputIDs = e.FromInt32(dec, B, T)
		return batch, e.Err()
	}
	for _, r := range targets {
		if len(r) > T {
			T = len(r)
		}
	}
	if T == 0 {
		batch.Release()
		return nil, fmt.Errorf("t5: every target row is empty")
	}
	labels := make([]int32, B*T)
	dec := make([]int32, B*T)
	for b, r := range targets {
		for j := 0; j < T; j++ {
			l := IgnoreIndex
			if j < len(r) {
				l = r[j]
				if l != IgnoreIndex && (l < 0 || l >= c.VocabSize) {
					batch.Release()
					return nil, fmt.Errorf("t5: target row %d position %d: id %d outside the vocabulary of %d", b, j, l, c.VocabSize)
				}
			}
			labels[b*T+j] = int32(l)
		}
		dec[b*T] = int32(c.DecoderStartTokenID)
		for j := 1; j < T; j++ {
			p := labels[b*T+j-1]
			if p == IgnoreIndex {
				p = int32(c.PadTokenID)
			}
			dec[b*T+j] = p
		}
	}
	batch.Labels = e.FromInt32(labels, B, T)
	batch.DecoderInputIDs = e.FromInt32(dec, B, T)
	return batch, e.Err()
}

// AdditiveMask turns a 0/1 attention mask into the additive form the model
// uses: 0 for real tokens, MaskNeg for padding.
func AdditiveMask(mask []int64) []float32 {
	out := make([]float32, len(mask))
	for i, v := range mask {
		if v == 0 {
			out[i] = MaskNeg
		}
	}
	return out
}

// release frees tensors, skipping nils.
func release(ts ...*ag.Tensor) {
	for _, t := range ts {
		t.Release()
	}
}
