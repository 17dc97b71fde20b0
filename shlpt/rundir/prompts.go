package rundir

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// PromptTensor is the name of the tensor in a stored prompt file
// (prompts/<task>.safetensors).
const PromptTensor = "prompt"

// MultitaskStage is the name of the one stage of a multitask run: its
// prompt is prompts/multitask.safetensors.
const MultitaskStage = "multitask"

// PromptFile returns the path of task's stored prompt in a run (or
// imported prompts) directory.
func PromptFile(dir, task string) string {
	return filepath.Join(dir, PromptsDir, task+".safetensors")
}

// Prompt is a prompt read from a stored prompt file: Lp rows of d values.
type Prompt struct {
	Lp, D int
	Data  []float32 // Lp·d values, row-major
	// Meta is the file's metadata (task, index, method; source for an
	// imported prompt).
	Meta map[string]string
}

// ReadPrompt reads a stored prompt file: one float32 tensor "prompt"
// (Lp, d).
func ReadPrompt(path string) (*Prompt, error) {
	b, err := limitio.ReadFile(path, 1<<30, "a stored prompt")
	if err != nil {
		return nil, err
	}
	f, err := safetensors.Parse(path, b)
	if err != nil {
		return nil, err
	}
	t, ok := f.Tensor(PromptTensor)
	if !ok || len(f.Names()) != 1 {
		return nil, fmt.Errorf("%s: a stored prompt holds one tensor %q, this file holds %v", path, PromptTensor, f.Names())
	}
	if t.DType != safetensors.F32 || len(t.Shape) != 2 || t.Shape[0] < 1 || t.Shape[1] < 1 {
		return nil, fmt.Errorf("%s: tensor %q is %s %v, expected F32 (Lp, d)", path, PromptTensor, t.DType, t.Shape)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, err
	}
	return &Prompt{Lp: t.Shape[0], D: t.Shape[1], Data: v, Meta: f.Metadata()}, nil
}

// WritePrompt writes p as a stored prompt file at path, atomically.
func WritePrompt(path string, p *Prompt) error {
	if p.Lp < 1 || p.D < 1 || len(p.Data) != p.Lp*p.D {
		return fmt.Errorf("%s: a prompt of %d values is not (%d, %d)", path, len(p.Data), p.Lp, p.D)
	}
	var buf bytes.Buffer
	t := safetensors.FromFloat32(PromptTensor, []int{p.Lp, p.D}, p.Data)
	if err := safetensors.Encode(&buf, []safetensors.Tensor{t}, p.Meta); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// Exportable says whether a method tests each task with a prompt that the
// run directory stores (method.Spec.Export: the stored prompt, or
// ProgPrompt's concatenation of the stored prompts), or why not: L2P and
// CODA-Prompt build each input's prompt from a shared pool by a query of
// the input, and the full-weight methods change the model's weights.
func Exportable(methodName string) error {
	sp, err := method.Lookup(methodName)
	if err != nil {
		return err
	}
	switch {
	case sp.Export != method.ExportNone:
		return nil
	case sp.FullWeight:
		return fmt.Errorf("%s changes the model's weights: there is no prompt that carries what it learned", methodName)
	}
	return fmt.Errorf("%s builds each input's prompt from a shared pool by a query of the input (input-dependent prompts), not one prompt per task", methodName)
}

// TestPrompt returns the prompt that the run in dir (with settings s)
// tests task with, as the method's registration says: its stored prompt
// (SHLPT, per-task, continual init; the one prompt of a multitask run) or
// the concatenation of the stored prompts of the task and every task
// before it, newest first (ProgPrompt). The method must be Exportable and
// the task learned.
func TestPrompt(dir string, s *Config, task string) (*Prompt, error) {
	if err := Exportable(s.Method); err != nil {
		return nil, err
	}
	idx := s.TaskIndex(task)
	if idx < 0 {
		return nil, fmt.Errorf("run %s has no task %s (tasks %v)", dir, task, s.Tasks)
	}
	read := func(name string) (*Prompt, error) {
		path := PromptFile(dir, name)
		p, err := ReadPrompt(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("run %s has not stored a prompt for %s yet (no %s)", dir, name, path)
		}
		return p, err
	}
	sp, err := method.Lookup(s.Method)
	if err != nil {
		return nil, err
	}
	switch {
	case s.Multitask:
		return read(MultitaskStage)
	case sp.Export != method.ExportConcatenated:
		return read(s.Tasks[idx])
	}
	// ProgPrompt: [P_i; P_{i−1}; …; P_0].
	out := &Prompt{Meta: map[string]string{"task": s.Tasks[idx], "index": strconv.Itoa(idx), "method": s.Method}}
	for k := idx; k >= 0; k-- {
		p, err := read(s.Tasks[k])
		if err != nil {
			return nil, err
		}
		if out.D != 0 && p.D != out.D {
			return nil, fmt.Errorf("run %s: the stored prompts of %s and %s have widths %d and %d", dir, s.Tasks[k], s.Tasks[idx], p.D, out.D)
		}
		out.D = p.D
		out.Lp += p.Lp
		out.Data = append(out.Data, p.Data...)
	}
	return out, nil
}

// TaskIndex returns the place of task name (a canonical name or a
// built-in task's alias) in the run's sequence, or -1.
func (c *Config) TaskIndex(name string) int {
	name = strings.TrimSpace(name)
	if t, err := tasks.Lookup(name); err == nil {
		name = t.Name
	}
	for i, t := range c.Tasks {
		if t == name {
			return i
		}
	}
	return -1
}

// Learned is how many of the run's tasks have been learned: the finished
// stages, or with Multitask every task once the one stage is done.
func (r *Results) Learned() int {
	if r.Multitask {
		if r.Complete {
			return len(r.Tasks)
		}
		return 0
	}
	return r.StagesDone
}
