package rundir

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Config is every setting a run depends on. Together with the model, the
// data files and the device it determines the run's results.
type Config struct {
	Method    string   `json:"method"`
	Model     string   `json:"model"`     // HF model folder
	Tokenizer string   `json:"tokenizer"` // folder with tokenizer.json
	Data      string   `json:"data"`      // dataset root in the SHLPT layout
	Tasks     []string `json:"tasks"`     // canonical task names in order
	Benchmark string   `json:"benchmark"` // "std", "long", "nt" or "" for --tasks
	Order     int      `json:"order"`
	Seed      uint64   `json:"seed"`

	Epochs int `json:"epochs"`
	// MaxSteps stops a stage after this many training steps (0: no limit),
	// validating where it stops.
	MaxSteps int `json:"max_steps"`
	Patience int `json:"patience"` // validations without improvement before stopping
	// EvalFrom is the first epoch (0-based) after which the current task
	// is validated; the last epoch is always validated.
	EvalFrom int `json:"eval_from"`

	KTrain int `json:"k_train"`
	KVal   int `json:"k_val"`
	KTest  int `json:"k_test"`

	BatchSize     int     `json:"batch_size"`
	EvalBatchSize int     `json:"eval_batch_size"`
	LR            float64 `json:"lr"`
	WeightDecay   float64 `json:"weight_decay"`
	MaxGradNorm   float64 `json:"max_grad_norm"`
	MaxInputLen   int     `json:"max_input_len"`
	// Dropout turns the model's dropout on in training (the reference
	// trains with it).
	Dropout bool `json:"dropout"`
	// Weights is the storage of the frozen model's weights: f32, bf16 or
	// f16 (computation stays fp32).
	Weights string `json:"weights"`

	Decode            string  `json:"decode"` // beam, greedy or rank
	NumBeams          int     `json:"num_beams"`
	RepetitionPenalty float64 `json:"repetition_penalty"`

	// ReferenceMetrics makes the reference's metric variants primary
	// (MultiRC micro-F1, SQuAD F1 against the first gold answer).
	ReferenceMetrics bool `json:"reference_metrics"`
	// MultiRCAccumulate reproduces the reference's MultiRC inputs.
	MultiRCAccumulate bool `json:"multirc_accumulate"`
	// PerTaskScores is a results.json of a per-task run whose test
	// diagonal FWT is measured against ("" for none).
	PerTaskScores string `json:"per_task_scores"`

	// PromptLen is the prompt length: of the task's prompt (shlpt,
	// per-task, continual-init), of each task's prompt (progprompt), of
	// each pool prompt (l2p) or of each component (coda).
	PromptLen int `json:"prompt_len"`
	// Multitask trains every task of the sequence at once with one prompt
	// (the usual upper reference) instead of one after another.
	Multitask bool `json:"multitask"`

	SHLPT      method.SHLPTConfig      `json:"shlpt"`
	ProgPrompt method.ProgPromptConfig `json:"progprompt"`
	L2P        method.L2PConfig        `json:"l2p"`
	CODA       method.CODAConfig       `json:"coda"`
	EWC        method.EWCConfig        `json:"ewc"`
	ER         method.ERConfig         `json:"er"`
}

// Benchmark is one of the reference's experiments (reference §0).
type Benchmark struct {
	Name     string
	Orders   map[int]string // --order → task sequence name
	Epochs   int
	Patience int
	Delta    float64
	// AllDissimilar is the Negative Transfer benchmark's oracle setting.
	AllDissimilar bool
}

// Benchmarks are the paper's three experiments.
var Benchmarks = []Benchmark{
	{Name: "std", Orders: map[int]string{1: "order1", 2: "order2", 3: "order3"}, Epochs: 50, Patience: 35, Delta: 0.06},
	{Name: "long", Orders: map[int]string{4: "order4", 5: "order5", 6: "order6"}, Epochs: 80, Patience: 50, Delta: 0.06},
	{Name: "nt", Orders: map[int]string{1: "nt1", 2: "nt2", 3: "nt3"}, Epochs: 50, Patience: 35, Delta: 1.5, AllDissimilar: true},
}

// LookupBenchmark returns the benchmark named name.
func LookupBenchmark(name string) (Benchmark, error) {
	var names []string
	for _, b := range Benchmarks {
		if b.Name == name {
			return b, nil
		}
		names = append(names, b.Name)
	}
	return Benchmark{}, fmt.Errorf("unknown benchmark %q (expected %s)", name, strings.Join(names, ", "))
}

// Methods lists the method names the runner knows.
func Methods() []string {
	return []string{"shlpt", "per-task", "continual-init", "progprompt", "l2p", "coda", "finetune", "ewc", "er"}
}

// FullWeight reports whether a method trains every weight of the model.
func FullWeight(methodName string) bool {
	switch methodName {
	case "finetune", "ewc", "er":
		return true
	}
	return false
}

// MethodDefaults are the settings whose defaults depend on the method (the
// defaults of its paper, or of the SHLPT reference's model sets).
type MethodDefaults struct {
	PromptLen       int
	LR, WeightDecay float64
}

// DefaultsFor returns the method's defaults: the SHLPT reference's prompt
// tuning (150 tokens, lr 0.3, weight decay 1e-5), Progressive Prompts' 10
// tokens per task, L2P's pool prompts of 5 tokens, CODA-Prompt's
// components of 8 tokens (with the reference's CODA model set: weight
// decay 0), and the reference's full-model settings (lr 1e-4, weight decay
// 0.01; no prompt).
func DefaultsFor(methodName string) MethodDefaults {
	switch {
	case methodName == "progprompt":
		return MethodDefaults{PromptLen: method.DefaultProgPrompt().PromptLen, LR: 0.3, WeightDecay: 1e-5}
	case methodName == "l2p":
		return MethodDefaults{PromptLen: method.DefaultL2P().PromptLen, LR: 0.3, WeightDecay: 1e-5}
	case methodName == "coda":
		return MethodDefaults{PromptLen: method.DefaultCODA().PromptLen, LR: 0.3, WeightDecay: 0}
	case FullWeight(methodName):
		return MethodDefaults{PromptLen: 0, LR: 1e-4, WeightDecay: 0.01}
	}
	return MethodDefaults{PromptLen: 150, LR: 0.3, WeightDecay: 1e-5}
}

// DefaultConfig is the reference's configuration for a benchmark ("" for
// an explicit task list, which gets the Standard CL settings).
func DefaultConfig(benchmark string) (Config, error) {
	c := Config{
		Method: "shlpt", Seed: 42, Benchmark: benchmark,
		EvalFrom: 10, KTrain: 75, KVal: 75, KTest: 100,
		BatchSize: 8, EvalBatchSize: 16, LR: 0.3, WeightDecay: 1e-5, MaxGradNorm: 1,
		MaxInputLen: tasks.MaxInputLen, Dropout: true, Weights: "f32",
		Decode: "beam", NumBeams: 4, RepetitionPenalty: 2.5,
		SHLPT: method.DefaultSHLPT(), ProgPrompt: method.DefaultProgPrompt(),
		L2P: method.DefaultL2P(), CODA: method.DefaultCODA(),
		EWC: method.DefaultEWC(), ER: method.DefaultER(),
	}
	d := DefaultsFor(c.Method)
	c.PromptLen, c.LR, c.WeightDecay = d.PromptLen, d.LR, d.WeightDecay
	name := benchmark
	if name == "" {
		name = "std"
	}
	b, err := LookupBenchmark(name)
	if err != nil {
		return c, err
	}
	c.Epochs, c.Patience = b.Epochs, b.Patience
	c.SHLPT.Delta, c.SHLPT.AllDissimilar = b.Delta, b.AllDissimilar
	return c, nil
}

// SequenceTasks returns the tasks of a benchmark's order.
func SequenceTasks(benchmark string, order int) ([]string, error) {
	b, err := LookupBenchmark(benchmark)
	if err != nil {
		return nil, err
	}
	name, ok := b.Orders[order]
	if !ok {
		var orders []string
		for o := range b.Orders {
			orders = append(orders, fmt.Sprint(o))
		}
		sort.Strings(orders)
		return nil, fmt.Errorf("benchmark %s has no order %d (orders %s)", benchmark, order, strings.Join(orders, ", "))
	}
	s, err := tasks.LookupSequence(name)
	if err != nil {
		return nil, err
	}
	return s.Tasks, nil
}

// Validate checks the settings and canonicalizes task names.
func (c *Config) Validate() error {
	if err := finiteSettings(reflect.ValueOf(c).Elem(), ""); err != nil {
		return err
	}
	known := false
	for _, m := range Methods() {
		known = known || m == c.Method
	}
	if !known {
		return fmt.Errorf("unknown method %q (expected %s)", c.Method, strings.Join(Methods(), ", "))
	}
	if c.Model == "" {
		return fmt.Errorf("no model folder (--model)")
	}
	if c.Data == "" {
		return fmt.Errorf("no data folder (--data)")
	}
	if len(c.Tasks) == 0 {
		return fmt.Errorf("no tasks (--tasks or --benchmark with --order)")
	}
	seen := map[string]bool{}
	for i, name := range c.Tasks {
		t, _, err := tasks.Resolve(c.Data, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		if seen[t.Name] {
			return fmt.Errorf("task %s appears twice in the sequence", t.Name)
		}
		seen[t.Name] = true
		c.Tasks[i] = t.Name
		if t.QA && c.Decode == "rank" {
			return fmt.Errorf("--decode rank needs label words, but task %s is question answering", t.Name)
		}
	}
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs %d must be at least 1", c.Epochs)
	case c.Patience < 1:
		return fmt.Errorf("patience %d must be at least 1", c.Patience)
	case c.EvalFrom < 0:
		return fmt.Errorf("eval-from %d must not be negative", c.EvalFrom)
	case c.BatchSize < 1 || c.EvalBatchSize < 1:
		return fmt.Errorf("batch sizes must be at least 1 (train %d, eval %d)", c.BatchSize, c.EvalBatchSize)
	case c.KTrain == 0 || c.KVal == 0 || c.KTest == 0:
		return fmt.Errorf("k-train, k-val and k-test must be positive or -1 for all (%d, %d, %d)", c.KTrain, c.KVal, c.KTest)
	case !(c.LR > 0):
		return fmt.Errorf("learning rate %v must be positive", c.LR)
	case !(c.WeightDecay >= 0) || !(c.MaxGradNorm >= 0):
		return fmt.Errorf("weight decay %v and gradient clipping %v must not be negative", c.WeightDecay, c.MaxGradNorm)
	case c.PromptLen < 1 && !FullWeight(c.Method):
		return fmt.Errorf("prompt length %d must be at least 1", c.PromptLen)
	case c.Multitask && c.Method != "per-task" && !FullWeight(c.Method):
		return fmt.Errorf("--multitask trains every task at once: use per-task (one prompt) or a full-weight method, not %s", c.Method)
	case FullWeight(c.Method) && c.Weights != "f32":
		return fmt.Errorf("%s trains every weight, which needs --weights f32 (not %s)", c.Method, c.Weights)
	case c.MaxSteps < 0:
		return fmt.Errorf("max steps %d must not be negative", c.MaxSteps)
	case c.MaxInputLen < 2:
		return fmt.Errorf("max input length %d must be at least 2", c.MaxInputLen)
	case c.NumBeams < 1:
		return fmt.Errorf("beam count %d must be at least 1", c.NumBeams)
	case !(c.RepetitionPenalty > 0):
		return fmt.Errorf("repetition penalty %v must be positive", c.RepetitionPenalty)
	}
	if _, err := t5.ParseWeights(c.Weights); err != nil {
		return err
	}
	switch c.Decode {
	case "beam", "greedy", "rank":
	default:
		return fmt.Errorf("unknown decoding %q (expected beam, greedy or rank)", c.Decode)
	}
	return c.methodConfigErr()
}

// methodConfigErr checks the settings of the configured method, with the
// run's prompt length (which the method configs do not store).
func (c *Config) methodConfigErr() error {
	switch c.Method {
	case "shlpt":
		s := c.SHLPT
		s.PromptLen = c.PromptLen
		return s.Validate()
	case "l2p":
		s := c.L2P
		s.PromptLen = c.PromptLen
		return s.Validate()
	case "coda":
		s := c.CODA
		s.PromptLen = c.PromptLen
		return s.Validate()
	}
	return nil
}

// PadToMax says whether every batch is padded to MaxInputLen, as the
// reference pads every input to max_seq_len; it only matters where padding
// is counted (SHLPT's max-pool with quirks).
func (c *Config) PadToMax() bool { return c.SHLPT.Quirks }

// finiteSettings checks every floating-point setting of v (a struct, its
// nested structs included): each must be a finite number that float32,
// the precision the device computes in, can hold. The error names the
// setting as config.json does.
func finiteSettings(v reflect.Value, prefix string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.Struct:
			if err := finiteSettings(fv, prefix+name+"."); err != nil {
				return err
			}
		case reflect.Float32, reflect.Float64:
			x := fv.Float()
			if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > math.MaxFloat32 {
				return fmt.Errorf("setting %s%s is %v: it must be a finite number within float32's range", prefix, name, x)
			}
		}
	}
	return nil
}
