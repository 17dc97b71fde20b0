package method

import (
	"fmt"
	"math/rand/v2"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// InitPromptFromVocab sets prompt (Lp, d) to rows of the model's input
// embedding at vocabulary ids drawn uniformly from [0, vocab_size), as the
// reference initializes every task's prompt (sentinel and padding rows
// included).
func InitPromptFromVocab(m *t5.Model, prompt *ag.Tensor, rng *rand.Rand) error {
	e := m.Engine()
	if prompt.Rank() != 2 || prompt.Dim(1) != m.Config.DModel {
		return fmt.Errorf("prompt %v must be (Lp, %d)", prompt, m.Config.DModel)
	}
	ids := make([]int32, prompt.Dim(0))
	for i := range ids {
		ids[i] = int32(rng.IntN(m.Config.VocabSize))
	}
	defer e.NoGrad()()
	sc := e.Scope()
	defer sc.End()
	v, err := ag.Embedding(m.Shared, e.FromInt32(ids, len(ids))).Float32s()
	if err != nil {
		return err
	}
	return prompt.WriteFloat32(v)
}
