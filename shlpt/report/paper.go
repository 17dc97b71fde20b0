// Package report turns run directories into the paper's tables and
// figures: runs are grouped by every setting but the seed, each group is
// summarized over its seeds (mean, sample standard deviation, n), and every
// number is shown next to the paper's published value where the setting is
// the paper's. It reads files only (shlpt/rundir); it never needs a device.
package report

import (
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

//go:embed paper.json
var paperJSON []byte

// PaperKey is the setting a published number measures.
type PaperKey struct {
	Benchmark string `json:"benchmark"`
	// Order is the benchmark's order; 0 for the average over its orders.
	Order  int    `json:"order,omitempty"`
	Method string `json:"method"`
	// Variant is an ablation ("-STT") or "" for the method itself.
	Variant string `json:"variant,omitempty"`
	// Metric is average, bwt, fwt or forgetting (of the test scores).
	Metric string `json:"metric"`
}

// PaperCell is one published number.
type PaperCell struct {
	Table  string   `json:"table"`
	Row    string   `json:"row"`
	Column string   `json:"column"`
	Value  float64  `json:"value"`
	Key    PaperKey `json:"key"`
	Source string   `json:"source"`
}

// Paper is the paper's published numbers (paper.json).
type Paper struct {
	Title   string            `json:"paper"`
	Doc     string            `json:"doc"`
	Setting json.RawMessage   `json:"setting"`
	Sources map[string]string `json:"sources"`
	Cells   []PaperCell       `json:"cells"`
	Missing []struct {
		Table string `json:"table"`
		What  string `json:"what"`
	} `json:"missing"`
	WhyMissing string `json:"why_missing"`
}

// PaperSeeds are the seeds of the authors' runs.
var PaperSeeds = []uint64{42, 142, 242}

// Published returns the paper's numbers.
func Published() (*Paper, error) {
	var p Paper
	if err := json.Unmarshal(paperJSON, &p); err != nil {
		return nil, fmt.Errorf("paper.json: %v", err)
	}
	return &p, nil
}

// Lookup returns the published number of a setting, or nil. Where a
// setting is printed in more than one table the first is returned.
func (p *Paper) Lookup(k PaperKey) *PaperCell {
	for i := range p.Cells {
		if p.Cells[i].Key == k {
			return &p.Cells[i]
		}
	}
	return nil
}

// PaperPrimary is the primary metric the paper's numbers use for a task
// (the authors' code: MultiRC micro-F1, SQuAD F1 against the first gold
// answer, accuracy otherwise): the default primary metric.
func PaperPrimary(task string) string {
	t, err := tasks.Lookup(task)
	if err != nil {
		return metrics.AccuracyName // a custom task: the paper has no number for it
	}
	return metrics.PrimaryName(t, metrics.Options{})
}
