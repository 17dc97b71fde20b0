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
	h, err := m.hostBatch(inputs, targets, padTo, targetLen)
	if err != nil {
		return nil, err
	}
	e := m.e
	batch := &Batch{
		InputIDs:        e.FromInt32(h.ids, h.B, h.L),
		InputMask:       e.FromFloat32(h.mask, h.B, h.L),
		DecoderInputIDs: e.FromInt32(h.dec, h.B, h.T),
	}
	if h.labels != nil {
		batch.Labels = e.FromInt32(h.labels, h.B, h.T)
	}
	if err := e.Err(); err != nil {
		batch.Release()
		return nil, err
	}
	return batch, nil
}

// WriteBatch overwrites the tensors of b, made by NewBatch, with new rows of
// exactly b's shape: inputs padded to b's input length, targets to its
// target length. A recorded program that reads b then runs on the new rows.
func (m *Model) WriteBatch(b *Batch, inputs, targets [][]int) error {
	B, L, T := b.InputIDs.Dim(0), b.InputIDs.Dim(1), b.DecoderInputIDs.Dim(1)
	if len(inputs) != B || (targets == nil) != (b.Labels == nil) {
		return fmt.Errorf("t5: writing %d rows (labels %v) into a batch of %d rows (labels %v)", len(inputs), targets != nil, B, b.Labels != nil)
	}
	h, err := m.hostBatch(inputs, targets, L, T)
	if err != nil {
		return err
	}
	if h.L != L || h.T != T {
		return fmt.Errorf("t5: rows of up to %d input and %d target ids do not fit a batch of %d and %d", h.L, h.T, L, T)
	}
	for _, w := range []error{b.InputIDs.WriteInt32(h.ids), b.InputMask.WriteFloat32(h.mask), b.DecoderInputIDs.WriteInt32(h.dec)} {
		if w != nil {
			return w
		}
	}
	if b.Labels != nil {
		return b.Labels.WriteInt32(h.labels)
	}
	return nil
}

// hostArrays is a batch laid out on the host, as NewBatch describes.
type hostArrays struct {
	B, L, T  int
	ids, dec []int32
	labels   []int32 // nil without targets
	mask     []float32
}

func (m *Model) hostBatch(inputs, targets [][]int, padTo, targetLen int) (*hostArrays, error) {
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
	h := &hostArrays{B: B, L: L, ids: make([]int32, B*L), mask: make([]float32, B*L)}
	for b, r := range inputs {
		if len(r) == 0 {
			return nil, fmt.Errorf("t5: input row %d is empty", b)
		}
		for j := 0; j < L; j++ {
			if j < len(r) {
				if r[j] < 0 || r[j] >= c.VocabSize {
					return nil, fmt.Errorf("t5: input row %d position %d: id %d outside the vocabulary of %d", b, j, r[j], c.VocabSize)
				}
				h.ids[b*L+j] = int32(r[j])
			} else {
				h.ids[b*L+j] = int32(c.PadTokenID)
				h.mask[b*L+j] = MaskNeg
			}
		}
	}
	T := targetLen
	if targets == nil {
		if T == 0 {
			T = 1
		}
		h.T = T
		h.dec = make([]int32, B*T)
		for i := range h.dec {
			h.dec[i] = int32(c.DecoderStartTokenID)
		}
		return h, nil
	}
	for _, r := range targets {
		if len(r) > T {
			T = len(r)
		}
	}
	if T == 0 {
		return nil, fmt.Errorf("t5: every target row is empty")
	}
	h.T = T
	h.labels = make([]int32, B*T)
	h.dec = make([]int32, B*T)
	for b, r := range targets {
		for j := 0; j < T; j++ {
			l := IgnoreIndex
			if j < len(r) {
				l = r[j]
				if l != IgnoreIndex && (l < 0 || l >= c.VocabSize) {
					return nil, fmt.Errorf("t5: target row %d position %d: id %d outside the vocabulary of %d", b, j, l, c.VocabSize)
				}
			}
			h.labels[b*T+j] = int32(l)
		}
		h.dec[b*T] = int32(c.DecoderStartTokenID)
		for j := 1; j < T; j++ {
			p := h.labels[b*T+j-1]
			if p == IgnoreIndex {
				p = int32(c.PadTokenID)
			}
			h.dec[b*T+j] = p
		}
	}
	return h, nil
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
