package method

import (
	"fmt"
	"math"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// EstimatorNormEps is the ε of the estimator's LayerNorm (torch's default).
const EstimatorNormEps = 1e-5

// Estimator is SHLPT's attention-based similarity estimator (Eq. 3–4):
// h = LayerNorm(SiLU(x̂·W_downᵀ)·W_upᵀ), α = softmax_j(h·p̂_j / τ_sim),
// where x̂ is the max-pool of an input's token embeddings and p̂_j the
// max-pool of pool prompt j. Its weights are in torch Linear layout.
type Estimator struct {
	Down  *ag.Tensor // (r, d)
	Up    *ag.Tensor // (d, r)
	NormW *ag.Tensor // (d,)
	NormB *ag.Tensor // (d,)
}

// Estimator tensor names, in checkpoints and case files.
var estimatorNames = [4]string{"estimator.down.weight", "estimator.up.weight", "estimator.norm.weight", "estimator.norm.bias"}

// NewEstimator creates a trainable estimator for d-wide embeddings with
// bottleneck r, initialized as torch initializes Linear (uniform in
// ±1/√fan_in) and LayerNorm (weight 1, bias 0) from its own random stream.
func NewEstimator(e *ag.Engine, d, r int, seed uint64) (*Estimator, error) {
	if d <= 0 || r <= 0 {
		return nil, fmt.Errorf("estimator: width %d and rank %d must be positive", d, r)
	}
	rng := Stream(seed, "estimator-init")
	est := &Estimator{
		Down:  e.Param(estimatorNames[0], torchUniform(rng, r*d, d), r, d),
		Up:    e.Param(estimatorNames[1], torchUniform(rng, d*r, r), d, r),
		NormW: e.Param(estimatorNames[2], ones(d), d),
		NormB: e.Param(estimatorNames[3], make([]float32, d), d),
	}
	if err := e.Err(); err != nil {
		est.Release()
		return nil, err
	}
	return est, nil
}

// Params are the estimator's trainable tensors.
func (est *Estimator) Params() []*ag.Tensor {
	return []*ag.Tensor{est.Down, est.Up, est.NormW, est.NormB}
}

// Alpha returns the similarity weights α (B, P) of inputs with max-pooled
// embeddings xhat (B, d) to pool prompts with max-pooled rows phat (P, d).
func (est *Estimator) Alpha(xhat, phat *ag.Tensor, tauSim float64) *ag.Tensor {
	sc := xhat.Engine().Scope()
	defer sc.End()
	down := ag.Linear(xhat, est.Down)      // (B, r)
	up := ag.Linear(ag.SiLU(down), est.Up) // (B, d)
	h := ag.LayerNorm(up, est.NormW, est.NormB, EstimatorNormEps)
	scores := ag.MatMul(h, phat, false, true) // (B, P)
	B, P := scores.Dim(0), scores.Dim(1)
	probs := ag.Softmax(ag.Scale(scores, float32(1/tauSim)).Reshape(1, 1, B, P), nil, nil, false)
	return sc.Keep(probs.Reshape(B, P))
}

// HostTensors reads the estimator's weights.
func (est *Estimator) HostTensors() ([]HostTensor, error) {
	var out []HostTensor
	for i, t := range est.Params() {
		v, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		out = append(out, HostTensor{Name: estimatorNames[i], Shape: t.Shape(), Data: v})
	}
	return out, nil
}

// Load writes weights named as HostTensors names them.
func (est *Estimator) Load(ts []HostTensor) error {
	for i, t := range est.Params() {
		v, err := find(ts, estimatorNames[i], t.Shape()...)
		if err != nil {
			return err
		}
		if err := t.WriteFloat32(v); err != nil {
			return err
		}
	}
	return nil
}

// Release frees the weights.
func (est *Estimator) Release() {
	for _, t := range est.Params() {
		t.Release()
	}
}

// torchUniform returns n values uniform in ±1/√fanIn, torch's default
// initialization of a Linear layer's weight and bias.
func torchUniform(rng interface{ Float64() float64 }, n, fanIn int) []float32 {
	b := 1 / math.Sqrt(float64(fanIn))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((2*rng.Float64() - 1) * b)
	}
	return v
}

// ones returns n ones (a LayerNorm's initial scale).
func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}
