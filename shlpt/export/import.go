package export

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Import reads PEFT prompt-tuning adapter folders into the imported
// folder out: prompts/<task>.safetensors (the stored-prompt format of a
// run directory, which eval --prompts and serve read) and imported.json
// with each task's card and source. task names the task of a single
// adapter (default: its card's, or the folder's name). Tasks already in
// out are replaced; the others are kept. It returns the imported prompts.
func Import(adapters []string, out, task string) ([]TaskPrompt, error) {
	if len(adapters) == 0 {
		return nil, fmt.Errorf("import: no adapter folders")
	}
	if task != "" && len(adapters) > 1 {
		return nil, fmt.Errorf("import: --task names the task of one adapter, not of %d", len(adapters))
	}
	var tps []TaskPrompt
	var sources []string
	seen := map[string]string{}
	for _, a := range adapters {
		tp, err := FromAdapter(a, task)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[tp.Card.Task]; dup {
			return nil, fmt.Errorf("import: %s and %s are both task %s", prev, a, tp.Card.Task)
		}
		seen[tp.Card.Task] = a
		abs, err := filepath.Abs(a)
		if err != nil {
			return nil, err
		}
		tps, sources = append(tps, tp), append(sources, abs)
	}
	m := &Manifest{}
	if _, err := os.Stat(filepath.Join(out, ImportedFile)); err == nil {
		if m, err = readManifest(out); err != nil {
			return nil, err
		}
	} else if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("import: %s holds files but no %s: choose an empty or new folder", out, ImportedFile)
	}
	for i, tp := range tps {
		p := *tp.Prompt
		p.Meta = map[string]string{"task": tp.Card.Task, "method": "imported", "source": sources[i], "base_model": tp.Card.Model}
		if err := rundir.WritePrompt(rundir.PromptFile(out, tp.Card.Task), &p); err != nil {
			return nil, err
		}
		kept := m.Tasks[:0]
		for _, it := range m.Tasks {
			if it.Card.Task != tp.Card.Task {
				kept = append(kept, it)
			}
		}
		m.Tasks = append(kept, ImportedTask{Source: sources[i], Card: tp.Card})
	}
	sort.Slice(m.Tasks, func(i, j int) bool { return m.Tasks[i].Card.Task < m.Tasks[j].Card.Task })
	b, err := marshal(m)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(out, ImportedFile), b); err != nil {
		return nil, err
	}
	return tps, nil
}
