package export

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// TaskPrompt is a task's prompt and its card.
type TaskPrompt struct {
	Card   Card
	Prompt *rundir.Prompt
}

// FromRun returns the test prompts of the named tasks of the run in dir
// (all learned tasks when names is empty), for methods that have one
// prompt per task (rundir.Exportable); others are refused with the reason.
func FromRun(dir string, names []string) ([]TaskPrompt, error) {
	info, err := rundir.ReadInfo(dir)
	if err != nil {
		return nil, err
	}
	s := &info.Settings
	if err := rundir.Exportable(s.Method); err != nil {
		return nil, fmt.Errorf("run %s: its prompts cannot be exported: %v", dir, err)
	}
	res, err := rundir.ReadResults(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("run %s has not finished a task yet (no %s)", dir, rundir.ResultsFile)
	}
	if err != nil {
		return nil, err
	}
	learned := res.Learned()
	idx := make([]int, 0, len(s.Tasks))
	if len(names) == 0 {
		for i := 0; i < learned; i++ {
			idx = append(idx, i)
		}
	}
	for _, n := range names {
		i := s.TaskIndex(n)
		switch {
		case i < 0:
			return nil, fmt.Errorf("run %s has no task %q (its tasks: %s)", dir, n, strings.Join(s.Tasks, ", "))
		case i >= learned:
			return nil, fmt.Errorf("run %s has not learned task %s yet (%d of %d tasks done)", dir, s.Tasks[i], learned, len(s.Tasks))
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("run %s has not finished a task yet", dir)
	}
	var out []TaskPrompt
	for _, i := range idx {
		p, err := rundir.TestPrompt(dir, s, s.Tasks[i])
		if err != nil {
			return nil, err
		}
		c, err := runCard(dir, s, res, i)
		if err != nil {
			return nil, err
		}
		c.PromptLen, c.DModel = p.Lp, p.D
		out = append(out, TaskPrompt{Card: c, Prompt: p})
	}
	return out, nil
}

// ImportedFile lists the prompts of an imported folder (written by
// Import): their cards and where they came from.
const ImportedFile = "imported.json"

// Manifest is imported.json.
type Manifest struct {
	Tasks []ImportedTask `json:"tasks"`
}

// ImportedTask is one imported prompt: prompts/<task>.safetensors.
type ImportedTask struct {
	Source string `json:"source"` // the adapter folder it was read from
	Card   Card   `json:"card"`
}

// readManifest reads dir's imported.json.
func readManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ImportedFile)
	var m Manifest
	if err := readJSON(path, &m); err != nil {
		return nil, err
	}
	for i := range m.Tasks {
		if err := m.Tasks[i].Card.check(fmt.Sprintf("%s: task %d", path, i)); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// FromImported returns the prompts of an imported folder.
func FromImported(dir string) ([]TaskPrompt, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, err
	}
	var out []TaskPrompt
	for _, it := range m.Tasks {
		path := rundir.PromptFile(dir, it.Card.Task)
		p, err := rundir.ReadPrompt(path)
		if err != nil {
			return nil, err
		}
		if p.Lp != it.Card.PromptLen || p.D != it.Card.DModel {
			return nil, fmt.Errorf("%s: the prompt is (%d, %d), %s says (%d, %d)", path, p.Lp, p.D, ImportedFile, it.Card.PromptLen, it.Card.DModel)
		}
		out = append(out, TaskPrompt{Card: it.Card, Prompt: p})
	}
	return out, nil
}

// FromAdapter reads a PEFT prompt-tuning adapter folder as a task prompt.
// Its card comes from the card file shlpt-vk exports beside it; without
// one, task must name a built-in task (the folder's name by default),
// decoded and scored with the reference's settings.
func FromAdapter(dir, task string) (TaskPrompt, error) {
	cfg, p, err := ReadPEFT(dir)
	if err != nil {
		return TaskPrompt{}, err
	}
	cpath := filepath.Join(dir, CardFile)
	var c Card
	if _, err := os.Stat(cpath); err == nil {
		rc, err := readCard(cpath)
		if err != nil {
			return TaskPrompt{}, err
		}
		c = *rc
		if task != "" {
			c.Task = task
		}
	} else {
		if task == "" {
			task = filepath.Base(filepath.Clean(dir))
		}
		t, err := tasks.Lookup(task)
		if err != nil {
			return TaskPrompt{}, fmt.Errorf("%s has no %s, and %q is not a built-in task: name the task with --task", dir, CardFile, task)
		}
		def, _ := rundir.DefaultConfig("")
		c = Card{Task: t.Name, Labels: t.Labels, QA: t.QA, TargetLen: t.TargetLen, Template: t.Template(), Fields: t.Fields(),
			MaxInputLen: def.MaxInputLen, Decode: def.Decode, NumBeams: def.NumBeams, RepetitionPenalty: def.RepetitionPenalty,
			Method: "peft", Model: cfg.BaseModelNameOrPath, Index: -1}
	}
	c.PromptLen, c.DModel = p.Lp, p.D
	if err := c.check(dir); err != nil {
		return TaskPrompt{}, err
	}
	return TaskPrompt{Card: c, Prompt: p}, nil
}

// Load returns the task prompts of a run directory (every learned task),
// an imported folder or a PEFT adapter folder.
func Load(path string) ([]TaskPrompt, error) {
	has := func(name string) bool {
		_, err := os.Stat(filepath.Join(path, name))
		return err == nil
	}
	switch {
	case has(rundir.ConfigFile):
		return FromRun(path, nil)
	case has(ImportedFile):
		return FromImported(path)
	case has(PEFTConfigFile):
		tp, err := FromAdapter(path, "")
		if err != nil {
			return nil, err
		}
		return []TaskPrompt{tp}, nil
	}
	return nil, fmt.Errorf("%s is not a run directory (%s), an imported folder (%s) or a PEFT adapter (%s)", path, rundir.ConfigFile, ImportedFile, PEFTConfigFile)
}
