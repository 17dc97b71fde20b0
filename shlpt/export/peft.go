package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// Files of a PEFT adapter folder, and the tensor of a prompt-tuning
// adapter (PEFT's get_peft_model_state_dict names it so).
const (
	PEFTConfigFile  = "adapter_config.json"
	PEFTWeightsFile = "adapter_model.safetensors"
	PEFTTensor      = "prompt_embeddings"
)

// PEFTConfig is adapter_config.json of a PEFT prompt-tuning adapter for a
// sequence-to-sequence model, with the fields PeftConfig.from_pretrained
// reads for PROMPT_TUNING (keys in PEFT's sorted order). One transformer
// submodule: the prompt goes before the encoder's input only, as shlpt-vk
// trains it (PEFT's default for SEQ_2_SEQ_LM, 2, would prompt the decoder
// too).
type PEFTConfig struct {
	BaseModelNameOrPath      string  `json:"base_model_name_or_path"`
	InferenceMode            bool    `json:"inference_mode"`
	NumAttentionHeads        int     `json:"num_attention_heads"`
	NumLayers                int     `json:"num_layers"`
	NumTransformerSubmodules int     `json:"num_transformer_submodules"`
	NumVirtualTokens         int     `json:"num_virtual_tokens"`
	PeftType                 string  `json:"peft_type"`
	PromptTuningInit         string  `json:"prompt_tuning_init"`
	PromptTuningInitText     *string `json:"prompt_tuning_init_text"`
	Revision                 *string `json:"revision"`
	TaskType                 string  `json:"task_type"`
	TokenDim                 int     `json:"token_dim"`
	TokenizerNameOrPath      *string `json:"tokenizer_name_or_path"`
}

// WritePEFT writes p as a PEFT prompt-tuning adapter folder dir:
// adapter_config.json, adapter_model.safetensors holding
// prompt_embeddings (Lp, d) in float32, and the task's card. heads and
// layers are the model's (PEFT records them for prompt learning).
func WritePEFT(dir string, p *rundir.Prompt, card Card, heads, layers int) error {
	cfg := PEFTConfig{
		BaseModelNameOrPath: card.Model, InferenceMode: true,
		NumAttentionHeads: heads, NumLayers: layers, NumTransformerSubmodules: 1,
		NumVirtualTokens: p.Lp, PeftType: "PROMPT_TUNING", PromptTuningInit: "RANDOM",
		TaskType: "SEQ_2_SEQ_LM", TokenDim: p.D,
	}
	cb, err := marshal(cfg)
	if err != nil {
		return err
	}
	card.PromptLen, card.DModel = p.Lp, p.D
	kb, err := marshal(card)
	if err != nil {
		return err
	}
	var wb bytes.Buffer
	t := safetensors.FromFloat32(PEFTTensor, []int{p.Lp, p.D}, p.Data)
	// transformers and PEFT write this metadata into their safetensors.
	if err := safetensors.Encode(&wb, []safetensors.Tensor{t}, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{PEFTWeightsFile, wb.Bytes()}, {CardFile, kb}, {PEFTConfigFile, cb}} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// ReadPEFT reads a PEFT prompt-tuning adapter folder: its configuration
// and the prompt (num_virtual_tokens, token_dim) as float32 (float16 and
// bfloat16 weights are widened). Adapters that are not prompt tuning of
// the encoder are refused with the reason.
func ReadPEFT(dir string) (*PEFTConfig, *rundir.Prompt, error) {
	cpath := filepath.Join(dir, PEFTConfigFile)
	b, err := limitio.ReadFile(cpath, 1<<20, "a PEFT adapter config")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s is not a PEFT adapter folder (no %s)", dir, PEFTConfigFile)
	}
	if err != nil {
		return nil, nil, err
	}
	// PEFT writes many more fields than prompt tuning needs: unknown ones
	// are allowed.
	var cfg PEFTConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", cpath, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", cpath, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.PeftType != "PROMPT_TUNING":
		return nil, nil, bad("peft_type %q: only PROMPT_TUNING adapters hold a soft prompt shlpt-vk can use", cfg.PeftType)
	case cfg.TaskType != "SEQ_2_SEQ_LM":
		return nil, nil, bad("task_type %q: shlpt-vk serves encoder-decoder models (SEQ_2_SEQ_LM)", cfg.TaskType)
	case cfg.NumTransformerSubmodules != 1:
		return nil, nil, bad("num_transformer_submodules %d: the adapter prompts the decoder too; shlpt-vk prompts the encoder only (1)", cfg.NumTransformerSubmodules)
	case cfg.NumVirtualTokens < 1 || cfg.TokenDim < 1:
		return nil, nil, bad("num_virtual_tokens %d and token_dim %d must be positive", cfg.NumVirtualTokens, cfg.TokenDim)
	}
	wpath := filepath.Join(dir, PEFTWeightsFile)
	wb, err := limitio.ReadFile(wpath, 1<<30, "PEFT adapter weights")
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "adapter_model.bin")); err == nil {
			return nil, nil, fmt.Errorf("%s: the weights are a pickle (adapter_model.bin); save the adapter with safe_serialization=True", dir)
		}
		return nil, nil, fmt.Errorf("%s: no %s", dir, PEFTWeightsFile)
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := safetensors.Parse(wpath, wb)
	if err != nil {
		return nil, nil, err
	}
	t, ok := f.Tensor(PEFTTensor)
	if !ok {
		return nil, nil, fmt.Errorf("%s: no tensor %q (tensors: %v)", wpath, PEFTTensor, f.Names())
	}
	if len(t.Shape) != 2 || t.Shape[0] != cfg.NumVirtualTokens || t.Shape[1] != cfg.TokenDim {
		return nil, nil, fmt.Errorf("%s: %s is %v, but %s says (%d, %d)", wpath, PEFTTensor, t.Shape, PEFTConfigFile, cfg.NumVirtualTokens, cfg.TokenDim)
	}
	if !t.DType.IsFloat() {
		return nil, nil, fmt.Errorf("%s: %s is %s, not a float type", wpath, PEFTTensor, t.DType)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, nil, err
	}
	return &cfg, &rundir.Prompt{Lp: cfg.NumVirtualTokens, D: cfg.TokenDim, Data: v}, nil
}
