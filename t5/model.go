package t5

import (
	"fmt"
	"math"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// MaskNeg is what masked attention scores get: HF adds finfo(float32).min.
const MaskNeg = -math.MaxFloat32

// Batch is one batch of inputs on the device.
type Batch struct {
	// InputIDs (B, L) int32: encoder token ids, right-padded with 0.
	InputIDs *ag.Tensor
	// InputMask (B, L) f32: 0 for real tokens and MaskNeg for padding
	// (an additive attention mask; see NewBatch).
	InputMask *ag.Tensor
	// DecoderInputIDs (B, T) int32: the labels shifted right, starting with
	// the decoder start id (0), ignored positions as 0.
	DecoderInputIDs *ag.Tensor
	// Labels (B, T) int32, -100 where ignored. Nil: no loss.
	Labels *ag.Tensor
}

// Release frees the batch's tensors.
func (b *Batch) Release() {
	for _, t := range []*ag.Tensor{b.InputIDs, b.InputMask, b.DecoderInputIDs, b.Labels} {
		t.Release()
	}
}

// Options choose what a forward pass computes and returns.
type Options struct {
	// Prompt (Lp, d_model) is prepended to every row's token embeddings, or
	// Prompt (B, Lp, d_model) gives each row its own prompt; the encoder
	// mask is extended with Lp real positions. Nil: no prompt.
	Prompt *ag.Tensor
	// Logits keeps the decoder logits (B, T, vocab) in the output.
	Logits bool
	// Hidden keeps the decoder's final hidden states (B, T, d_model) after
	// the final norm (and dropout when training).
	Hidden bool
	// FFNActFirst keeps the last decoder block's feed-forward activation
	// f(h·Wi) (relu; gelu_new(h·Wi0) when gated) at the first decoder
	// position, (B, d_ff), before dropout.
	FFNActFirst bool
	// EncoderOut keeps the encoder output (B, Lp+L, d_model).
	EncoderOut bool
}

// Output holds what a forward pass returns; the caller releases it.
type Output struct {
	Loss        *ag.Tensor // (1,): mean token cross-entropy, nil without labels
	Logits      *ag.Tensor // (B, T, vocab)
	Hidden      *ag.Tensor // (B, T, d_model)
	FFNActFirst *ag.Tensor // (B, d_ff)
	EncoderOut  *ag.Tensor // (B, Lp+L, d_model)
}

// Release frees every tensor of the output.
func (o *Output) Release() {
	for _, t := range []*ag.Tensor{o.Loss, o.Logits, o.Hidden, o.FFNActFirst, o.EncoderOut} {
		t.Release()
	}
}

// Forward runs encoder and teacher-forced decoder on b. With labels it
// computes the loss, which Backward can differentiate with respect to the
// prompt and any trainable weight. Errors are reported by the engine
// (m.Engine().Err()) and by reading or differentiating the outputs: after
// an error every requested output is a placeholder of its shape (see
// autograd.Engine.Placeholder), whose reads and ops return the error.
func (m *Model) Forward(b *Batch, o Options) *Output {
	e := m.e
	if err := m.checkBatch(b); err != nil {
		e.Fail(err)
		return m.failedOutput(b, o)
	}
	m.beginPass()
	enc, mask := m.Encode(b.InputIDs, b.InputMask, o.Prompt)
	out := &Output{}
	dec, act := m.decode(b.DecoderInputIDs, enc, mask, o.FFNActFirst)
	mask.Release()
	if o.EncoderOut {
		out.EncoderOut = enc
	} else {
		enc.Release()
	}
	out.FFNActFirst = act
	if o.Hidden {
		out.Hidden = dec
	}
	if b.Labels != nil || o.Logits {
		logits := m.logits(dec)
		if b.Labels != nil {
			out.Loss = ag.CrossEntropy(logits, b.Labels)
		}
		if o.Logits {
			out.Logits = logits
		} else {
			logits.Release()
		}
	}
	if !o.Hidden {
		dec.Release()
	}
	if err := e.Err(); err != nil {
		out.Release()
		return m.failedOutput(b, o)
	}
	return out
}

// failedOutput is what Forward returns after an error: placeholders of the
// requested outputs' shapes, as far as b and the prompt tell them (0 for a
// size they do not).
func (m *Model) failedOutput(b *Batch, o Options) *Output {
	e, c := m.e, &m.Config
	var B, L, T int
	labels := false
	if b != nil {
		B, L = dimOf(b.InputIDs, 0), dimOf(b.InputIDs, 1)
		T = dimOf(b.DecoderInputIDs, 1)
		labels = b.Labels != nil
	}
	Lp := 0
	if o.Prompt != nil {
		Lp = dimOf(o.Prompt, o.Prompt.Rank()-2)
	}
	out := &Output{}
	if labels {
		out.Loss = e.Placeholder(ag.F32, 1)
	}
	if o.Logits {
		out.Logits = e.Placeholder(ag.F32, B, T, c.VocabSize)
	}
	if o.Hidden {
		out.Hidden = e.Placeholder(ag.F32, B, T, c.DModel)
	}
	if o.FFNActFirst {
		out.FFNActFirst = e.Placeholder(ag.F32, B, c.DFF)
	}
	if o.EncoderOut {
		out.EncoderOut = e.Placeholder(ag.F32, B, Lp+L, c.DModel)
	}
	return out
}

// dimOf is dimension i of t, or 0 when t is nil or has no such axis.
func dimOf(t *ag.Tensor, i int) int {
	if t == nil {
		return 0
	}
	if s := t.Shape(); i >= 0 && i < len(s) {
		return s[i]
	}
	return 0
}

// beginPass starts a forward pass: dropout sites are numbered from 0 again
// and, when training, the dropout seed advances on the device.
func (m *Model) beginPass() {
	m.site = 0
	if m.dropping() {
		ag.AdvanceSeed(m.seed)
	}
}

// dropout applies the model's dropout when training.
func (m *Model) dropout(x *ag.Tensor) *ag.Tensor {
	if !m.dropping() {
		return x
	}
	m.site++
	y := ag.Dropout(x, float32(m.Config.DropoutRate), m.seed, m.site)
	x.Release()
	return y
}

// dropping reports whether dropout layers are active: in training, with a
// non-zero rate.
func (m *Model) dropping() bool { return m.training && m.Config.DropoutRate > 0 }

// Encode runs the encoder on ids (B, L) with additive mask (B, L), after
// prepending prompt when given: (Lp, d) shared by every row, or (B, Lp, d)
// one per row. It returns the encoder output (B, Lp+L, d) and the extended
// additive mask (B, Lp+L) for cross-attention.
func (m *Model) Encode(ids, mask, prompt *ag.Tensor) (out, fullMask *ag.Tensor) {
	e := m.e
	x := ag.Embedding(m.Shared, ids)
	fullMask = mask.Reshape(mask.Shape()...)
	if prompt != nil {
		px := ag.PrependRows(prompt, x)
		x.Release()
		x = px
		Lp := prompt.Dim(0)
		if prompt.Rank() == 3 {
			Lp = prompt.Dim(1) // one prompt per row
		}
		zeros := e.Zeros(ids.Dim(0), Lp)
		pm := ag.Concat(zeros, fullMask, 1)
		zeros.Release()
		fullMask.Release()
		fullMask = pm
	}
	return m.encodeEmbedded(x, fullMask), fullMask
}

// encodeEmbedded runs the encoder blocks on embedded inputs x (B, T, d),
// consuming x, with the additive key mask (B, T), and returns the output
// (B, T, d).
func (m *Model) encodeEmbedded(x, fullMask *ag.Tensor) *ag.Tensor {
	x = m.dropout(x)
	T := x.Dim(1)
	c := &m.Config
	bias := ag.RelPosBias(m.Encoder.RelBias, T, T, 0, true, c.RelativeAttentionNumBuckets, c.RelativeAttentionMaxDistance)
	for i := range m.Encoder.Blocks {
		x = m.block(&m.Encoder.Blocks[i], x, bias, fullMask, nil, nil, false, nil)
	}
	bias.Release()
	out := ag.RMSNorm(x, m.Encoder.FinalNorm, float32(c.LayerNormEpsilon))
	x.Release()
	return m.dropout(out)
}

// decode runs the decoder teacher-forced on ids (B, T) against the encoder
// output. It returns the final hidden states (B, T, d) and, when wantAct,
// the last block's activation at the first position.
func (m *Model) decode(ids, enc, encMask *ag.Tensor, wantAct bool) (*ag.Tensor, *ag.Tensor) {
	c := &m.Config
	x := m.dropout(ag.Embedding(m.Shared, ids))
	T := x.Dim(1)
	bias := ag.RelPosBias(m.Decoder.RelBias, T, T, 0, false, c.RelativeAttentionNumBuckets, c.RelativeAttentionMaxDistance)
	var act *ag.Tensor
	for i := range m.Decoder.Blocks {
		var want **ag.Tensor
		if wantAct && i == len(m.Decoder.Blocks)-1 {
			want = &act
		}
		x = m.block(&m.Decoder.Blocks[i], x, bias, nil, enc, encMask, true, want)
	}
	bias.Release()
	h := ag.RMSNorm(x, m.Decoder.FinalNorm, float32(c.LayerNormEpsilon))
	x.Release()
	return m.dropout(h), act
}

// logits maps decoder states (B, T, d) to vocabulary scores (B, T, V),
// scaled by d^-0.5 first when the head is the tied embedding.
func (m *Model) logits(h *ag.Tensor) *ag.Tensor {
	if m.Config.TieWordEmbeddings {
		s := ag.Scale(h, float32(1/math.Sqrt(float64(m.Config.DModel))))
		l := ag.Linear(s, m.LMHead)
		s.Release()
		return l
	}
	return ag.Linear(h, m.LMHead)
}

// block runs one T5 block on x (B, T, d), consuming x. selfMask (B, T) is
// the additive key mask of self-attention (nil: none); causal masks future
// keys. enc and encMask give cross-attention (decoder blocks).
func (m *Model) block(b *Block, x, bias, selfMask, enc, encMask *ag.Tensor, causal bool, act **ag.Tensor) *ag.Tensor {
	eps := float32(m.Config.LayerNormEpsilon)
	n := ag.RMSNorm(x, b.SelfNorm, eps)
	a := m.attention(&b.Self, n, n, bias, selfMask, causal)
	n.Release()
	x = m.residual(x, a)
	if b.Cross != nil {
		n = ag.RMSNorm(x, b.CrossNorm, eps)
		a = m.attention(b.Cross, n, enc, nil, encMask, false)
		n.Release()
		x = m.residual(x, a)
	}
	n = ag.RMSNorm(x, b.FFNorm, eps)
	f := m.feedForward(&b.FF, n, act)
	n.Release()
	return m.residual(x, f)
}

// residual returns x + dropout(y), consuming both.
func (m *Model) residual(x, y *ag.Tensor) *ag.Tensor {
	y = m.dropout(y)
	s := ag.Add(x, y)
	x.Release()
	y.Release()
	return s
}

// attention computes multi-head attention of queries from q (B, Tq, d)
// over keys and values from kv (B, Tk, d). bias (H, Tq, Tk) is T5's
// position bias (nil in cross-attention), mask (B, Tk) the additive key
// mask. T5 does not scale scores by 1/sqrt(d_kv).
func (m *Model) attention(p *Attention, q, kv, bias, mask *ag.Tensor, causal bool) *ag.Tensor {
	H := m.Config.NumHeads
	Q := splitHeads(ag.Linear(q, p.Q), H)
	K := splitHeads(ag.Linear(kv, p.K), H)
	V := splitHeads(ag.Linear(kv, p.V), H)
	scores := ag.MatMul(Q, K, false, true) // (B, H, Tq, Tk)
	Q.Release()
	K.Release()
	var probs *ag.Tensor
	if m.dropping() {
		// Attention dropout fused into the softmax (the same mask as
		// m.dropout would draw).
		m.site++
		probs = ag.SoftmaxDropout(scores, bias, mask, causal, float32(m.Config.DropoutRate), m.seed, m.site)
	} else {
		probs = ag.Softmax(scores, bias, mask, causal)
	}
	scores.Release()
	ctx := ag.MatMul(probs, V, false, false) // (B, H, Tq, D)
	probs.Release()
	V.Release()
	merged := ag.MergeHeads(ctx)
	ctx.Release()
	out := ag.Linear(merged, p.O)
	merged.Release()
	return out
}

func splitHeads(x *ag.Tensor, heads int) *ag.Tensor {
	y := ag.SplitHeads(x, heads)
	x.Release()
	return y
}

// feedForward is T5's DenseReluDense or DenseGatedActDense on n (B, T, d):
// act(n·Wiᵀ), or act(n·Wi0ᵀ) ⊙ n·Wi1ᵀ when gated, then ·Woᵀ. When first is
// not nil it receives act(n·Wiᵀ) (act(n·Wi0ᵀ) when gated) at the first
// position, (B, d_ff).
func (m *Model) feedForward(f *FeedForward, n *ag.Tensor, first **ag.Tensor) *ag.Tensor {
	var h, pre *ag.Tensor
	if m.Config.IsGatedAct {
		pre = ag.Linear(n, f.Wi0)
		lin := ag.Linear(n, f.Wi1)
		h = ag.Gated(pre, lin, m.act)
		lin.Release()
		if first != nil {
			p0 := ag.Slice(pre, 1, 0, 1)
			a0 := ag.Activate(p0, m.act)
			*first = a0.Reshape(pre.Dim(0), pre.Dim(2))
			release(p0, a0)
		}
	} else {
		pre = ag.Linear(n, f.Wi)
		h = ag.Activate(pre, m.act)
		if first != nil {
			a0 := ag.Slice(h, 1, 0, 1)
			*first = a0.Reshape(h.Dim(0), h.Dim(2))
			a0.Release()
		}
	}
	pre.Release()
	h = m.dropout(h)
	out := ag.Linear(h, f.Wo)
	h.Release()
	return out
}

// checkBatch validates a batch's shapes against each other.
func (m *Model) checkBatch(b *Batch) error {
	if b == nil || b.InputIDs == nil || b.InputMask == nil || b.DecoderInputIDs == nil {
		return fmt.Errorf("t5: batch needs input ids, input mask and decoder input ids")
	}
	if b.InputIDs.Rank() != 2 || !sameShape(b.InputIDs.Shape(), b.InputMask.Shape()) {
		return fmt.Errorf("t5: input ids %v and mask %v must both be (B, L)", b.InputIDs, b.InputMask)
	}
	if b.DecoderInputIDs.Rank() != 2 || b.DecoderInputIDs.Dim(0) != b.InputIDs.Dim(0) {
		return fmt.Errorf("t5: decoder input ids %v must be (B, T) with B = %d", b.DecoderInputIDs, b.InputIDs.Dim(0))
	}
	if b.Labels != nil && !sameShape(b.Labels.Shape(), b.DecoderInputIDs.Shape()) {
		return fmt.Errorf("t5: labels %v must match decoder input ids %v", b.Labels, b.DecoderInputIDs)
	}
	return nil
}
