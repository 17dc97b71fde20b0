package rundir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
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

	// PrimaryMetrics chooses the metrics that fill the matrices and drive
	// early stopping: "paper" (MultiRC micro-F1, SQuAD F1 against the
	// first gold answer: what the paper's tables report) or "official"
	// (MultiRC F1 over answer options, SQuAD F1 against every gold
	// answer). results.json keeps the other choice's scores too.
	PrimaryMetrics string `json:"primary_metrics"`
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

	// Settings are Method's own settings: a pointer to its registered
	// settings type (*method.SHLPTConfig, ...; see MethodSettings), nil
	// for a method without any. config.json holds them under the
	// method's name ("shlpt": {...}).
	Settings any `json:"-"`
}

// configFields is Config without its JSON methods.
type configFields Config

// MarshalJSON writes the configuration with the method's settings under
// the method's name.
func (c Config) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(configFields(c))
	if err != nil || c.Settings == nil {
		return b, err
	}
	sb, err := json.Marshal(c.Settings)
	if err != nil {
		return nil, err
	}
	key, _ := json.Marshal(c.Method)
	out := append(b[:len(b)-1:len(b)-1], ',')
	out = append(append(append(out, key...), ':'), sb...)
	return append(out, '}'), nil
}

// UnmarshalJSON reads a configuration strictly: an unknown field, a
// method's settings missing, or settings of another method are errors.
func (c *Config) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var name string
	if m, ok := raw["method"]; ok {
		if err := json.Unmarshal(m, &name); err != nil {
			return fmt.Errorf("method: %v", err)
		}
	}
	// A configuration without a method (a partial one) has no method
	// settings; Validate refuses it for a run.
	var spec *method.Spec
	var err error
	if name != "" {
		if spec, err = method.Lookup(name); err != nil {
			return err
		}
	}
	var others []string
	for _, n := range method.Names() {
		if _, ok := raw[n]; ok && n != name {
			others = append(others, n)
		}
	}
	if _, ok := raw["reference_metrics"]; ok {
		others = append(others, "reference_metrics")
	}
	if len(others) > 0 {
		// Earlier versions kept every method's settings and the
		// reference_metrics switch.
		return fmt.Errorf("the settings of a run of %s hold %s: written by an earlier shlpt-vk, which this one cannot continue",
			name, strings.Join(others, ", "))
	}
	var settings any
	if spec != nil && spec.HasSettings() {
		sb, ok := raw[name]
		if !ok {
			return fmt.Errorf("no settings of method %s (%q)", name, name)
		}
		if settings, err = spec.DecodeSettings(sb); err != nil {
			return err
		}
		delete(raw, name)
	}
	rest, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	var f configFields
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return err
	}
	*c = Config(f)
	c.Settings = settings
	return nil
}

// Clone returns a deep copy (settings included).
func (c Config) Clone() Config {
	out := c
	out.Tasks = slices.Clone(c.Tasks)
	out.Settings = method.CloneSettings(c.Settings)
	return out
}

// MethodSettings returns the configuration's settings as the method's
// settings type T (method.SHLPTConfig, ...), or nil when the configured
// method's settings are of another type.
func MethodSettings[T any](c *Config) *T {
	s, _ := c.Settings.(*T)
	return s
}

// UseMethod makes the configuration one of the named method, with the
// method's default settings, prompt length, learning rate and weight
// decay.
func (c *Config) UseMethod(name string) error {
	spec, err := method.Lookup(name)
	if err != nil {
		return err
	}
	c.Method, c.Settings = name, spec.NewSettings()
	d := spec.Defaults
	c.PromptLen, c.LR, c.WeightDecay = d.PromptLen, d.LR, d.WeightDecay
	return nil
}

// Spec is the configured method's registration.
func (c *Config) Spec() (*method.Spec, error) { return method.Lookup(c.Method) }

// The choices of Config.PrimaryMetrics.
const (
	PaperMetrics    = "paper"
	OfficialMetrics = "official"
)

// MetricOptions are the metrics options of a primary-metrics choice.
func MetricOptions(primary string) metrics.Options {
	return metrics.Options{Official: primary == OfficialMetrics}
}

// OtherMetrics is the primary-metrics choice that is not primary.
func OtherMetrics(primary string) string {
	if primary == OfficialMetrics {
		return PaperMetrics
	}
	return OfficialMetrics
}

// Benchmark is one of the reference's experiments (reference §0).
type Benchmark struct {
	Name     string
	Orders   map[int]string // --order → task sequence name
	Epochs   int
	Patience int
	// Settings are the benchmark's method settings, by method and flag
	// name: SHLPT's δ, and the Negative Transfer benchmark's oracle
	// setting where every earlier task is dissimilar.
	Settings map[string]map[string]string
}

// Benchmarks are the paper's three experiments.
var Benchmarks = []Benchmark{
	{Name: "std", Orders: map[int]string{1: "order1", 2: "order2", 3: "order3"}, Epochs: 50, Patience: 35,
		Settings: map[string]map[string]string{"shlpt": {"delta": "0.06", "all-dissimilar": "false"}}},
	{Name: "long", Orders: map[int]string{4: "order4", 5: "order5", 6: "order6"}, Epochs: 80, Patience: 50,
		Settings: map[string]map[string]string{"shlpt": {"delta": "0.06", "all-dissimilar": "false"}}},
	{Name: "nt", Orders: map[int]string{1: "nt1", 2: "nt2", 3: "nt3"}, Epochs: 50, Patience: 35,
		Settings: map[string]map[string]string{"shlpt": {"delta": "1.5", "all-dissimilar": "true"}}},
}

// Apply sets the benchmark's epochs, patience and the configured method's
// settings, except those whose flag given says to keep (nil: none).
func (b Benchmark) Apply(c *Config, given func(flag string) bool) error {
	if given == nil {
		given = func(string) bool { return false }
	}
	if !given("epochs") {
		c.Epochs = b.Epochs
	}
	if !given("patience") {
		c.Patience = b.Patience
	}
	spec, err := method.Lookup(c.Method)
	if err != nil {
		return err
	}
	set := b.Settings[c.Method]
	for _, f := range spec.Flags(c.Settings) {
		if v, ok := set[f.Name]; ok && !given(f.Name) {
			if err := f.Set(v); err != nil {
				return fmt.Errorf("benchmark %s: %w", b.Name, err)
			}
		}
	}
	return nil
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
func Methods() []string { return method.Names() }

// FullWeight reports whether a method trains every weight of the model.
func FullWeight(methodName string) bool {
	s, err := method.Lookup(methodName)
	return err == nil && s.FullWeight
}

// DefaultsFor returns the method's defaults of the run settings that
// depend on it (the zero value for an unknown method).
func DefaultsFor(methodName string) method.Defaults {
	s, err := method.Lookup(methodName)
	if err != nil {
		return method.Defaults{}
	}
	return s.Defaults
}

// DefaultConfig is the reference's configuration of SHLPT for a benchmark
// ("" for an explicit task list, which gets the Standard CL settings).
func DefaultConfig(benchmark string) (Config, error) { return DefaultConfigFor(benchmark, "shlpt") }

// DefaultConfigFor is the reference's configuration of a method for a
// benchmark: the method's defaults (its settings, with the benchmark's for
// it applied; its prompt length, learning rate and weight decay).
func DefaultConfigFor(benchmark, methodName string) (Config, error) {
	c := Config{
		Seed: 42, Benchmark: benchmark,
		EvalFrom: 10, KTrain: 75, KVal: 75, KTest: 100,
		BatchSize: 8, EvalBatchSize: 16, MaxGradNorm: 1,
		MaxInputLen: tasks.MaxInputLen, Dropout: true, Weights: "f32",
		Decode: "beam", NumBeams: 4, RepetitionPenalty: 2.5, PrimaryMetrics: PaperMetrics,
	}
	if err := c.UseMethod(methodName); err != nil {
		return c, err
	}
	name := benchmark
	if name == "" {
		name = "std"
	}
	b, err := LookupBenchmark(name)
	if err != nil {
		return c, err
	}
	return c, b.Apply(&c, nil)
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
	spec, err := method.Lookup(c.Method)
	if err != nil {
		return err
	}
	if err := finiteSettings(reflect.ValueOf(c).Elem(), ""); err != nil {
		return err
	}
	if c.Settings != nil {
		if v := reflect.ValueOf(c.Settings); v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			if err := finiteSettings(v.Elem(), c.Method+"."); err != nil {
				return err
			}
		}
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
	case c.PromptLen < 1 && !spec.FullWeight:
		return fmt.Errorf("prompt length %d must be at least 1", c.PromptLen)
	case c.Multitask && !spec.Multitask:
		return fmt.Errorf("--multitask trains every task at once: use per-task (one prompt) or a full-weight method, not %s", c.Method)
	case spec.FullWeight && c.Weights != "f32":
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
	if c.PrimaryMetrics != PaperMetrics && c.PrimaryMetrics != OfficialMetrics {
		return fmt.Errorf("unknown primary metrics %q (expected %s or %s)", c.PrimaryMetrics, PaperMetrics, OfficialMetrics)
	}
	return spec.Validate(c.Settings, method.RunShape{PromptLen: c.PromptLen, NumTasks: len(c.Tasks)})
}

// PadToMax says whether every batch is padded to MaxInputLen, as the
// reference pads every input to max_seq_len; it only matters where the
// method counts padding (SHLPT's max-pool with the pad-maxpool quirk).
func (c *Config) PadToMax() bool {
	spec, err := method.Lookup(c.Method)
	return err == nil && spec.PadToMax(c.Settings)
}

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
