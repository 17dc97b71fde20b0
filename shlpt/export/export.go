package export

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Export writes the test prompts of the named tasks of the run in dir
// (every learned task when names is empty) into out, in format: "peft",
// one PEFT prompt-tuning adapter folder out/<task>/ per task, or "npy",
// out/<task>.npy (float32, (Lp, d)) with the card in out/<task>.json. It
// returns the paths written, one per task.
func Export(dir, format, out string, names []string) ([]string, error) {
	if format != "peft" && format != "npy" {
		return nil, fmt.Errorf("unknown export format %q (expected peft or npy)", format)
	}
	tps, err := FromRun(dir, names)
	if err != nil {
		return nil, err
	}
	var heads, layers int
	if format == "peft" {
		mc, err := t5.LoadConfig(tps[0].Card.Model)
		if err != nil {
			return nil, fmt.Errorf("run %s: the model's configuration: %w", dir, err)
		}
		heads, layers = mc.NumHeads, mc.NumLayers
	}
	var written []string
	for _, tp := range tps {
		name := tp.Card.Task
		switch format {
		case "peft":
			path := filepath.Join(out, name)
			if err := WritePEFT(path, tp.Prompt, tp.Card, heads, layers); err != nil {
				return written, err
			}
			written = append(written, path)
		case "npy":
			b, err := encodeNPY([]int{tp.Prompt.Lp, tp.Prompt.D}, tp.Prompt.Data)
			if err != nil {
				return written, err
			}
			kb, err := marshal(tp.Card)
			if err != nil {
				return written, err
			}
			path := filepath.Join(out, name+".npy")
			if err := os.MkdirAll(out, 0o755); err != nil {
				return written, err
			}
			if err := atomicfile.WriteFile(filepath.Join(out, name+".json"), kb); err != nil {
				return written, err
			}
			if err := atomicfile.WriteFile(path, b); err != nil {
				return written, err
			}
			written = append(written, path)
		}
	}
	return written, nil
}
