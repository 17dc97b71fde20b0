package t5

import (
	"fmt"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// PromptRow is one row of a batch whose rows carry prompts of their own,
// of any length: rows [Offset, Offset+Len) of a prompt table (P, d) come
// first, then the input ids (ending with </s>, unpadded). Len 0 is a row
// without a prompt.
type PromptRow struct {
	Offset, Len int
	Input       []int
}

// RowBatch is a batch of PromptRows on the device, laid out for
// EncodeRows: row b's encoder input is its prompt followed by its input
// ids, then padding up to the batch's length T. That is the layout of
// Encode with a prompt (prompt, input, padding at the end), so a row gives
// the same encoder output here as in a batch of its own.
type RowBatch struct {
	B, T int
	// prompt (B, T) int32: the prompt-table row each position takes, -1
	// where it is not a prompt position.
	prompt *ag.Tensor
	// tokens (B, T) int32: the token id each position takes, -1 at prompt
	// positions (the embedding gives zero rows there), the pad id in the
	// padding.
	tokens *ag.Tensor
	// mask (B, T) f32: 0 for prompt and input positions, MaskNeg for
	// padding.
	mask *ag.Tensor
}

// Release frees the batch's tensors.
func (b *RowBatch) Release() { release(b.prompt, b.tokens, b.mask) }

// rowArrays lays rows out on the host for a batch of at least padTo
// positions per row.
func (m *Model) rowArrays(rows []PromptRow, padTo, tableRows int) (T int, prompt, tokens []int32, mask []float32, err error) {
	c := &m.Config
	if len(rows) == 0 {
		return 0, nil, nil, nil, fmt.Errorf("t5: empty batch")
	}
	T = padTo
	for b, r := range rows {
		if len(r.Input) == 0 {
			return 0, nil, nil, nil, fmt.Errorf("t5: input row %d is empty", b)
		}
		if r.Len < 0 || r.Offset < 0 || r.Offset+r.Len > tableRows {
			return 0, nil, nil, nil, fmt.Errorf("t5: row %d: prompt rows [%d, %d) outside the table of %d", b, r.Offset, r.Offset+r.Len, tableRows)
		}
		T = max(T, r.Len+len(r.Input))
	}
	B := len(rows)
	prompt, tokens, mask = make([]int32, B*T), make([]int32, B*T), make([]float32, B*T)
	for b, r := range rows {
		for j := 0; j < T; j++ {
			i := b*T + j
			switch {
			case j < r.Len:
				prompt[i], tokens[i] = int32(r.Offset+j), -1
			case j < r.Len+len(r.Input):
				id := r.Input[j-r.Len]
				if id < 0 || id >= c.VocabSize {
					return 0, nil, nil, nil, fmt.Errorf("t5: input row %d position %d: id %d outside the vocabulary of %d", b, j-r.Len, id, c.VocabSize)
				}
				prompt[i], tokens[i] = -1, int32(id)
			default:
				prompt[i], tokens[i], mask[i] = -1, int32(c.PadTokenID), MaskNeg
			}
		}
	}
	return T, prompt, tokens, mask, nil
}

// NewRowBatch uploads rows whose prompts are rows of a table of tableRows
// rows, padded at the end to the longest row (prompt and input), or to
// padTo when larger.
func (m *Model) NewRowBatch(rows []PromptRow, padTo, tableRows int) (*RowBatch, error) {
	T, prompt, tokens, mask, err := m.rowArrays(rows, padTo, tableRows)
	if err != nil {
		return nil, err
	}
	e := m.e
	B := len(rows)
	b := &RowBatch{B: B, T: T, prompt: e.FromInt32(prompt, B, T), tokens: e.FromInt32(tokens, B, T), mask: e.FromFloat32(mask, B, T)}
	if err := e.Err(); err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}

// WriteRowBatch overwrites b with new rows that fit its shape: exactly
// b.B rows of at most b.T positions. A recorded program that reads b then
// runs on the new rows.
func (m *Model) WriteRowBatch(b *RowBatch, rows []PromptRow, tableRows int) error {
	if len(rows) != b.B {
		return fmt.Errorf("t5: writing %d rows into a batch of %d", len(rows), b.B)
	}
	T, prompt, tokens, mask, err := m.rowArrays(rows, b.T, tableRows)
	if err != nil {
		return err
	}
	if T != b.T {
		return fmt.Errorf("t5: rows of up to %d positions do not fit a batch of %d", T, b.T)
	}
	for _, err := range []error{b.prompt.WriteInt32(prompt), b.tokens.WriteInt32(tokens), b.mask.WriteFloat32(mask)} {
		if err != nil {
			return err
		}
	}
	return nil
}

// EncodeRows runs the encoder without gradients on b, whose prompts are
// rows of table (P, d). It returns the encoder output (B, T, d) and the
// additive key mask (B, T) for cross-attention. It reads no values, so it
// can be recorded by Capture.
func (m *Model) EncodeRows(table *ag.Tensor, b *RowBatch) (enc, mask *ag.Tensor) {
	defer m.e.NoGrad()()
	m.beginPass()
	// Every position takes its value from exactly one of the two gathers;
	// the other gives zeros there, so the sum is that value exactly.
	p := ag.Embedding(table, b.prompt)
	x := ag.Embedding(m.Shared, b.tokens)
	px := ag.Add(p, x)
	p.Release()
	x.Release()
	mask = b.mask.Reshape(b.mask.Shape()...)
	return m.encodeEmbedded(px, mask), mask
}
