package method

import (
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/t5"
)

// MemoryEstimate is what a full-weight method needs on the device, in
// bytes, for a model and a training batch.
type MemoryEstimate struct {
	Weights     int64 `json:"weights"`     // the model's distinct weights, fp32
	Gradients   int64 `json:"gradients"`   // one per weight
	Optimizer   int64 `json:"optimizer"`   // AdamW's two moments
	EWC         int64 `json:"ewc"`         // the accumulated Fisher and the anchor
	Activations int64 `json:"activations"` // kept for backward in one step
	Total       int64 `json:"total"`
}

func (m MemoryEstimate) String() string {
	gib := func(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
	return fmt.Sprintf("%s (weights %s, gradients %s, optimizer %s, EWC %s, activations %s)",
		gib(m.Total), gib(m.Weights), gib(m.Gradients), gib(m.Optimizer), gib(m.EWC), gib(m.Activations))
}

// FullWeightMemory estimates the device memory of a training step that
// updates every weight: weights, gradients and AdamW's moments (four
// copies of the weights), EWC's Fisher and anchor (two more), and the
// activations backward reads for batches of B rows with inputs of L and
// targets of T tokens — per encoder layer the normalized input, the
// projections, attention scores and probabilities, the feed-forward
// pre-activation and activation and the residual stream; per decoder
// layer the same with cross-attention; the logits and their softmax. ER
// replays a second batch of the same size. The activation count leaves out
// short-lived temporaries, so it is a lower bound that the step's peak
// exceeds by the largest of them (measured peaks are in
// docs/performance.md).
func FullWeightMemory(c t5.Config, B, L, T int, ewc, er bool) MemoryEstimate {
	var params int64
	for _, w := range c.Weights() {
		if w.Optional {
			continue
		}
		n := int64(1)
		for _, d := range w.Shape {
			n *= int64(d)
		}
		params += n
	}
	const f = 4 // bytes per fp32 value
	b, l, t := int64(B), int64(L), int64(T)
	d, in, ff, h := int64(c.DModel), int64(c.InnerDim()), int64(c.DFF), int64(c.NumHeads)
	if c.IsGatedAct {
		ff *= 2
	}
	enc := b * l * (4*d + 4*in + 2*ff + 2*h*l)
	dec := b*t*(6*d+6*in+2*ff+2*h*t+2*h*l) + 2*b*l*in
	acts := int64(c.NumLayers)*enc + int64(c.NumDecoderLayers)*dec + 2*b*t*int64(c.VocabSize)
	if er {
		acts *= 2
	}
	m := MemoryEstimate{Weights: f * params, Gradients: f * params, Optimizer: 2 * f * params, Activations: f * acts}
	if ewc {
		m.EWC = 2 * f * params
	}
	m.Total = m.Weights + m.Gradients + m.Optimizer + m.EWC + m.Activations
	return m
}
