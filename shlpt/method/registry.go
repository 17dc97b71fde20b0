package method

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/t5"
)

// The registry: every method the runner can train, in the order the
// command line and the docs list them. A method is one file that defines
// its Spec (with Define) and one line here; the runner, the run
// configuration (shlpt/rundir), the train command's flags, the capacity
// check and sweep presets iterate Specs and never name a method.
var registry = []*Spec{
	shlptSpec,
	perTaskSpec,
	continualInitSpec,
	progPromptSpec,
	l2pSpec,
	codaSpec,
	finetuneSpec,
	ewcSpec,
	erSpec,
}

// Specs returns the registered methods in order.
func Specs() []*Spec { return append([]*Spec(nil), registry...) }

// Names returns the registered methods' names in order.
func Names() []string {
	out := make([]string, len(registry))
	for i, s := range registry {
		out[i] = s.Name
	}
	return out
}

// Lookup returns the method named name, or an error listing the known
// ones.
func Lookup(name string) (*Spec, error) {
	for _, s := range registry {
		if s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unknown method %q (expected %s)", name, strings.Join(Names(), ", "))
}

// Defaults are the run settings whose defaults depend on the method (the
// defaults of its paper, or of the SHLPT reference's model sets).
type Defaults struct {
	// PromptLen is the run's --prompt-len (0 for a method without a
	// prompt).
	PromptLen       int
	LR, WeightDecay float64
}

// RunShape is what a method's settings are validated against.
type RunShape struct {
	PromptLen int // the run's --prompt-len
	NumTasks  int // the length of the task sequence
}

// Export says what a finished run of a method can export as a PEFT
// prompt-tuning adapter (one per task, for `shlpt-vk export`).
type Export int

const (
	// ExportNone: nothing; the method's prompts depend on the input (L2P,
	// CODA-Prompt) or it changes the model's weights (full-weight methods).
	ExportNone Export = iota
	// ExportStoredPrompt: task i's stored prompt, prompts/<task>.safetensors,
	// is what task i is tested with.
	ExportStoredPrompt
	// ExportConcatenated: task i is tested with the stored prompts of
	// tasks i, i−1, …, 0 concatenated in that order (Progressive Prompts).
	ExportConcatenated
)

func (x Export) String() string {
	switch x {
	case ExportStoredPrompt:
		return "stored prompt"
	case ExportConcatenated:
		return "concatenated stored prompts"
	}
	return "none"
}

// Flag is one command-line flag of a method's settings. Value points into
// the settings: *bool, *int, *float64, *string or *[]string (a
// comma-separated list), or is a Value of its own.
type Flag struct {
	Name  string // without dashes; unique over every method
	Usage string
	Value any
	// NoValue is the value of the flag given without one ("true" for a
	// bool flag); "" when it needs one.
	NoValue string
}

// Value is a flag value that parses itself (the shape of pflag.Value).
type Value interface {
	String() string
	Set(string) error
	Type() string
}

// Set parses s into the flag's value.
func (f Flag) Set(s string) error {
	var err error
	switch p := f.Value.(type) {
	case Value:
		err = p.Set(s)
	case *bool:
		*p, err = strconv.ParseBool(s)
	case *int:
		*p, err = strconv.Atoi(s)
	case *float64:
		*p, err = strconv.ParseFloat(s, 64)
	case *string:
		*p = s
	case *[]string:
		*p = []string{}
		for _, x := range strings.Split(s, ",") {
			if x = strings.TrimSpace(x); x != "" {
				*p = append(*p, x)
			}
		}
	default:
		return fmt.Errorf("flag --%s: unsupported type %T", f.Name, f.Value)
	}
	if err != nil {
		return fmt.Errorf("--%s %q: %v", f.Name, s, err)
	}
	return nil
}

// Spec is a registered method: its name, its defaults and settings, their
// flags and validation, its constructor, its memory estimate and what it
// can export. Build one with Define.
type Spec struct {
	Name    string
	Summary string
	// FullWeight: the method trains every weight of the model (no prompt;
	// it needs f32 weights and its memory is checked before a run).
	FullWeight bool
	// Multitask: the method can train every task of a sequence at once
	// with one prompt or one set of weights (--multitask).
	Multitask bool
	Defaults  Defaults
	Export    Export

	settingsType reflect.Type // nil for a method without settings of its own
	defaults     func() any
	flags        func(settings any) []Flag
	validate     func(settings any, r RunShape) error
	build        func(env *Env, settings any) (Method, error)
	memory       func(settings any, c t5.Config, B, L, T int) *MemoryEstimate
	padToMax     func(settings any) bool
}

// Definition is what a method's file declares; S is its settings type
// (struct{} for none), written in config.json under the method's name.
type Definition[S any] struct {
	Name       string
	Summary    string
	FullWeight bool
	Multitask  bool
	Defaults   Defaults
	Export     Export
	// Settings are the defaults of the method's own settings.
	Settings S
	// Flags lists the flags bound to the settings s (nil: none).
	Flags func(s *S) []Flag
	// Validate checks the settings for a run (nil: nothing to check).
	// Validate and New get a copy of the settings whose prompt length is
	// the run's, when S has a setPromptLen method.
	Validate func(s *S, r RunShape) error
	// New builds the method for a run.
	New func(env *Env, s *S) (Method, error)
	// Memory estimates the device memory of a training step for batches
	// of B rows with inputs of L and targets of T tokens, for the check
	// before a run (nil: not checked).
	Memory func(s *S, c t5.Config, B, L, T int) MemoryEstimate
	// PadToMax says whether every batch must be padded to the run's
	// input length (nil: no).
	PadToMax func(s *S) bool
}

// Define turns a method's definition into its Spec.
func Define[S any](d Definition[S]) *Spec {
	sp := &Spec{Name: d.Name, Summary: d.Summary, FullWeight: d.FullWeight, Multitask: d.Multitask,
		Defaults: d.Defaults, Export: d.Export}
	cast := func(settings any) *S {
		if s, ok := settings.(*S); ok && s != nil {
			return s
		}
		var zero S
		return &zero
	}
	if t := reflect.TypeOf(d.Settings); t.Kind() != reflect.Struct || t.NumField() > 0 {
		sp.settingsType = t
	}
	// A deep copy each time, so that no two configurations share a slice.
	sp.defaults = func() any { return CloneSettings(&d.Settings) }
	sp.flags = func(settings any) []Flag {
		if d.Flags == nil {
			return nil
		}
		return d.Flags(cast(settings))
	}
	// withPromptLen is a copy of the settings with the run's prompt
	// length, for settings that carry it (json "-").
	withPromptLen := func(settings any, n int) *S {
		c := *cast(settings)
		if p, ok := any(&c).(interface{ setPromptLen(int) }); ok {
			p.setPromptLen(n)
		}
		return &c
	}
	sp.validate = func(settings any, r RunShape) error {
		if d.Validate == nil {
			return nil
		}
		return d.Validate(withPromptLen(settings, r.PromptLen), r)
	}
	sp.build = func(env *Env, settings any) (Method, error) {
		return d.New(env, withPromptLen(settings, env.PromptLen))
	}
	if d.Memory != nil {
		sp.memory = func(settings any, c t5.Config, B, L, T int) *MemoryEstimate {
			m := d.Memory(cast(settings), c, B, L, T)
			return &m
		}
	}
	if d.PadToMax != nil {
		sp.padToMax = func(settings any) bool { return d.PadToMax(cast(settings)) }
	}
	return sp
}

// CloneSettings returns a deep copy of settings (a pointer to a settings
// struct: its slice fields are copied too); nil and other values are
// returned as they are.
func CloneSettings(settings any) any {
	v := reflect.ValueOf(settings)
	if settings == nil || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return settings
	}
	c := reflect.New(v.Elem().Type())
	c.Elem().Set(v.Elem())
	for i := 0; i < c.Elem().NumField(); i++ {
		if f := c.Elem().Field(i); f.Kind() == reflect.Slice && !f.IsNil() && f.CanSet() {
			n := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
			reflect.Copy(n, f)
			f.Set(n)
		}
	}
	return c.Interface()
}

// HasSettings says whether the method has settings of its own.
func (s *Spec) HasSettings() bool { return s.settingsType != nil }

// NewSettings returns the method's default settings (a pointer to a new
// value of its settings type), or nil for a method without settings.
func (s *Spec) NewSettings() any {
	if !s.HasSettings() {
		return nil
	}
	return s.defaults()
}

// DecodeSettings reads the method's settings from JSON, strictly: an
// unknown field is an error.
func (s *Spec) DecodeSettings(b []byte) (any, error) {
	if !s.HasSettings() {
		return nil, fmt.Errorf("method %s has no settings", s.Name)
	}
	v := s.defaults()
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("settings of %s: %v", s.Name, err)
	}
	return v, nil
}

// checkSettings returns an error unless settings is what the method
// takes.
func (s *Spec) checkSettings(settings any) error {
	switch {
	case !s.HasSettings() && settings != nil:
		return fmt.Errorf("method %s has no settings of its own, but was given %T", s.Name, settings)
	case s.HasSettings() && reflect.TypeOf(settings) != reflect.PointerTo(s.settingsType):
		return fmt.Errorf("method %s takes settings of type *%v, not %T", s.Name, s.settingsType, settings)
	case s.HasSettings() && reflect.ValueOf(settings).IsNil():
		return fmt.Errorf("method %s: nil settings", s.Name)
	}
	return nil
}

// Flags returns the flags bound to settings (from NewSettings).
func (s *Spec) Flags(settings any) []Flag { return s.flags(settings) }

// Validate checks settings for a run of that shape.
func (s *Spec) Validate(settings any, r RunShape) error {
	if err := s.checkSettings(settings); err != nil {
		return err
	}
	return s.validate(settings, r)
}

// New builds the method with settings for the run of env.
func (s *Spec) New(env *Env, settings any) (Method, error) {
	if err := s.checkSettings(settings); err != nil {
		return nil, err
	}
	return s.build(env, settings)
}

// Memory estimates the device memory of a training step (batches of B
// rows, inputs of L and targets of T tokens) when the method wants it
// checked before a run; nil otherwise.
func (s *Spec) Memory(settings any, c t5.Config, B, L, T int) *MemoryEstimate {
	if s.memory == nil {
		return nil
	}
	return s.memory(settings, c, B, L, T)
}

// PadToMax says whether every batch is padded to the run's input length.
func (s *Spec) PadToMax(settings any) bool { return s.padToMax != nil && s.padToMax(settings) }

// boolFlag, intFlag, floatFlag and stringFlag are Flags of one type.
func boolFlag(name, usage string, v *bool) Flag {
	return Flag{Name: name, Usage: usage, Value: v, NoValue: "true"}
}
func intFlag(name, usage string, v *int) Flag { return Flag{Name: name, Usage: usage, Value: v} }
func floatFlag(name, usage string, v *float64) Flag {
	return Flag{Name: name, Usage: usage, Value: v}
}
func stringFlag(name, usage string, v *string) Flag { return Flag{Name: name, Usage: usage, Value: v} }
