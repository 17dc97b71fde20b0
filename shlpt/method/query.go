package method

import (
	"fmt"
	"math"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/kernels"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// The shared query of the prompt-pool baselines (L2P, CODA-Prompt).
//
// Both methods choose or weigh prompt components by a query q(x) of the
// input from the frozen pretrained model, which in their vision papers is
// the frozen ViT's [CLS] feature. T5 has no [CLS] token, so the query here
// is the mean of the frozen encoder's final output over the row's real
// tokens, without any prompt:
//
//	q_b = (1/n_b) Σ_{l : mask[b,l] = 0} Encode(ids, mask, nil)[b, l, :]    (B, d)
//
// where mask is the batch's additive input mask (0 for real tokens, MaskNeg
// for padding) and n_b the number of real tokens of row b. The encoder is
// the model's (frozen) encoder after its final RMSNorm, run without
// gradients and without dropout (the pretrained model in evaluation mode,
// as l2p-pytorch's and CODA-Prompt's query models are). q depends only on
// the input, never on what a method learns.
//
// A recorded step cannot read values, so steps compute q eagerly in
// Step.Write (the runner has filled the batch's device tensors by then)
// and write it into a (B, d) tensor they own, which the recorded Loss
// reads.

// encoderQuery returns the query q (B·d values, row-major) of the batch's
// device inputs: an eager, no-grad, dropout-free encoder pass. Real tokens
// are the positions whose additive mask is 0.
func encoderQuery(m *t5.Model, b *t5.Batch) ([]float32, error) {
	e := m.Engine()
	if err := e.Err(); err != nil {
		return nil, err
	}
	if b == nil || b.InputIDs == nil || b.InputMask == nil {
		return nil, fmt.Errorf("query: the batch has no device inputs")
	}
	B, L := b.InputIDs.Dim(0), b.InputIDs.Dim(1)
	mask, err := b.InputMask.Float32s()
	if err != nil {
		return nil, err
	}
	if len(mask) != B*L {
		return nil, fmt.Errorf("query: input mask %v does not match ids %v", b.InputMask, b.InputIDs)
	}
	// w (B, 1, L): 1 on real tokens; the sum is divided by n_b on the host.
	w := make([]float32, B*L)
	n := make([]int, B)
	for r := 0; r < B; r++ {
		for l := 0; l < L; l++ {
			if mask[r*L+l] == 0 {
				w[r*L+l] = 1
				n[r]++
			}
		}
		if n[r] == 0 {
			return nil, fmt.Errorf("query: batch row %d has no real token", r)
		}
	}
	defer e.NoGrad()()
	wasTraining := m.Training()
	m.SetTraining(false)
	defer m.SetTraining(wasTraining)
	v, err := func() ([]float32, error) {
		sc := e.Scope()
		defer sc.End()
		enc, _ := m.Encode(b.InputIDs, b.InputMask, nil)                          // (B, L, d)
		return ag.MatMul(e.FromFloat32(w, B, 1, L), enc, false, false).Float32s() // (B, 1, d)
	}()
	if err == nil {
		err = e.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	d := len(v) / B
	for r := 0; r < B; r++ {
		for k := 0; k < d; k++ {
			v[r*d+k] = float32(float64(v[r*d+k]) / float64(n[r]))
		}
	}
	return v, nil
}

// queryInput is the (B, d) query tensor a step owns: Write fills it, the
// recorded Loss reads it.
type queryInput struct {
	m *t5.Model
	q *ag.Tensor // (B, d)
}

// newQueryInput allocates the query of a step for B rows.
func newQueryInput(m *t5.Model, B int) (*queryInput, error) {
	e := m.Engine()
	q := e.Zeros(B, m.Config.DModel)
	if err := e.Err(); err != nil {
		q.Release()
		return nil, err
	}
	return &queryInput{m: m, q: q}, nil
}

// write computes the batch's query, writes it into the step's tensor and
// returns its values.
func (qi *queryInput) write(b *t5.Batch) ([]float32, error) {
	if B := b.InputIDs.Dim(0); B != qi.q.Dim(0) {
		return nil, fmt.Errorf("query: a batch of %d rows for a step of %d", B, qi.q.Dim(0))
	}
	v, err := encoderQuery(qi.m, b)
	if err != nil {
		return nil, err
	}
	return v, qi.q.WriteFloat32(v)
}

func (qi *queryInput) release() {
	if qi != nil {
		qi.q.Release()
	}
}

// cosine64 is the cosine similarity of a and b in float64 with the
// device Cosine's formula (torch's cosine_similarity: each norm clamped to
// at least CosineEps).
func cosine64(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	return ab / (math.Max(math.Sqrt(aa), kernels.CosineEps) * math.Max(math.Sqrt(bb), kernels.CosineEps))
}
