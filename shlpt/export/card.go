// Package export carries what a run learned out of shlpt-vk and back in:
// each task's test prompt as a Hugging Face PEFT prompt-tuning adapter or a
// NumPy array, adapters read back as task prompts (import), and the task
// prompts that serving loads from runs, imported folders and adapters.
package export

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/jsonfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// CardFile is written next to an exported adapter: what a task's prompt
// is for and how it is used (PEFT ignores the file).
const CardFile = "shlpt_vk_task.json"

// Card describes a task's prompt: how an input is built (the template),
// what the answers are (label words), how the task is decoded and scored,
// and where the prompt comes from.
type Card struct {
	Task string `json:"task"`
	// Labels are the label words (empty for question answering).
	Labels []string `json:"labels,omitempty"`
	QA     bool     `json:"qa,omitempty"`
	// Template is the input template with {field} placeholders over
	// Fields; empty when the input text is used as it is.
	Template string   `json:"template,omitempty"`
	Fields   []string `json:"fields,omitempty"`
	// TargetLen is the answer length in tokens with </s>.
	TargetLen int `json:"target_len"`
	// MaxInputLen is the input length in tokens with </s> (longer inputs
	// are cut, keeping </s>).
	MaxInputLen int `json:"max_input_len"`
	// Metric is the task's primary metric.
	Metric string `json:"metric,omitempty"`
	// Decoding as the run evaluates: beam, greedy or rank.
	Decode            string  `json:"decode"`
	NumBeams          int     `json:"num_beams"`
	RepetitionPenalty float64 `json:"repetition_penalty"`
	// PromptLen and DModel are the prompt's shape.
	PromptLen int `json:"prompt_len"`
	DModel    int `json:"d_model"`
	// Method, Run and Index say where the prompt was learned (Index: the
	// task's place in the run's sequence); Model and Tokenizer are the
	// run's model and tokenizer folders.
	Method    string `json:"method"`
	Run       string `json:"run,omitempty"`
	Index     int    `json:"index"`
	Model     string `json:"model"`
	Tokenizer string `json:"tokenizer,omitempty"`
	// Weights is the storage of the model's weights the run used (f32,
	// bf16 or f16).
	Weights string `json:"weights,omitempty"`
}

// taskCard fills the task's part of a card: its labels and template from
// the task definition (a custom task's under the data root).
func taskCard(dataRoot, name string) (Card, error) {
	t, files, err := tasks.Resolve(dataRoot, name)
	if err != nil {
		return Card{}, err
	}
	c := Card{Task: t.Name, Labels: t.Labels, QA: t.QA, TargetLen: t.TargetLen}
	if !files.Format.Verbatim() {
		c.Template, c.Fields = t.Template(), t.Fields()
	}
	return c, nil
}

// runCard is the card of task (the index-th of the run's sequence) of a
// run with settings s and results res.
func runCard(dir string, s *rundir.Config, res *rundir.Results, index int) (Card, error) {
	c, err := taskCard(s.Data, s.Tasks[index])
	if err != nil {
		return Card{}, fmt.Errorf("run %s: %w", dir, err)
	}
	c.MaxInputLen = s.MaxInputLen
	c.Decode, c.NumBeams, c.RepetitionPenalty = s.Decode, s.NumBeams, s.RepetitionPenalty
	c.Method, c.Run, c.Index, c.Model, c.Tokenizer, c.Weights = s.Method, dir, index, s.Model, s.Tokenizer, s.Weights
	if res != nil && index < len(res.Metric) {
		c.Metric = res.Metric[index]
	}
	return c, nil
}

// check verifies a card read from a file.
func (c *Card) check(where string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Task == "":
		return bad("no task name")
	case c.TargetLen < 2:
		return bad("target_len %d must be at least 2", c.TargetLen)
	case c.MaxInputLen < 2:
		return bad("max_input_len %d must be at least 2", c.MaxInputLen)
	case c.Decode != "beam" && c.Decode != "greedy" && c.Decode != "rank":
		return bad("unknown decode %q (expected beam, greedy or rank)", c.Decode)
	case c.NumBeams < 1 || !(c.RepetitionPenalty > 0):
		return bad("num_beams %d and repetition_penalty %v must be positive", c.NumBeams, c.RepetitionPenalty)
	case c.Decode == "rank" && len(c.Labels) < 2:
		return bad("rank decoding needs label words")
	case c.PromptLen < 1 || c.DModel < 1:
		return bad("prompt shape (%d, %d) must be positive", c.PromptLen, c.DModel)
	}
	if c.Template != "" {
		for _, f := range c.Fields {
			if strings.Count(c.Template, "{"+f+"}") != 1 {
				return bad("the template %q must hold {%s} once", c.Template, f)
			}
		}
		if len(c.Fields) == 0 {
			return bad("the template %q names no fields", c.Template)
		}
	}
	return nil
}

// readCard reads a card file.
func readCard(path string) (*Card, error) {
	var c Card
	if err := readJSON(path, &c); err != nil {
		return nil, err
	}
	return &c, c.check(path)
}

// readJSON decodes the JSON file at path into v, refusing unknown fields.
func readJSON(path string, v any) error {
	return jsonfile.Read(path, 16<<20, "a JSON file", v)
}

// marshal is the JSON of the files export writes: indented, with a final
// newline.
func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
