package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// notGrouped are settings that do not change a run's results, or that
// stand for something the group key holds otherwise: the seed (groups are
// averaged over it) and paths (the model and data enter through their
// fingerprints).
var notGrouped = map[string]bool{"seed": true, "model": true, "tokenizer": true, "data": true, "per_task_scores": true}

// Group is runs that differ only in their seed.
type Group struct {
	ID       string         // short and stable: the hash of Key
	Key      string         // the canonical JSON of the grouped settings
	Settings map[string]any // the first run's settings
	Runs     []*Run         // sorted by seed
	// Method, Variant (ablations, "-STT -HSC"), Benchmark, Order and Tasks
	// place the group in the paper's tables.
	Method, Variant, Benchmark string
	Order                      int
	Tasks                      []string
	Model                      Model
	// Differs lists the settings that are not the paper's (empty: the
	// paper's setting); Incomplete why the group's seeds are not all done;
	// Flags what else the reader must know (primary metrics unlike the
	// paper's).
	Differs, Incomplete, Flags []string
}

// Label is the group's row name in the tables: the method, its variant
// and what is not the paper's.
func (g *Group) Label() string {
	s := methodName(g.Method)
	if g.Variant != "" {
		s += " " + g.Variant
	}
	if len(g.Differs) > 0 {
		s += " [" + strings.Join(g.Differs, ", ") + "]"
	}
	return s
}

// ShortLabel is the method and its variant, for figure titles.
func (g *Group) ShortLabel() string { return strings.TrimSpace(methodName(g.Method) + " " + g.Variant) }

// Seeds lists the group's seeds in order.
func (g *Group) Seeds() []uint64 {
	var s []uint64
	for _, r := range g.Runs {
		s = append(s, r.Seed())
	}
	return s
}

// Complete runs of the group.
func (g *Group) Complete() []*Run {
	var out []*Run
	for _, r := range g.Runs {
		if r.State == StateComplete {
			out = append(out, r)
		}
	}
	return out
}

// Comparable says whether the group's numbers can be set against the
// paper's: its setting is the paper's and its seeds are the paper's.
func (g *Group) Comparable() bool { return len(g.Differs) == 0 && len(g.Incomplete) == 0 }

// methodName is the paper's name of a method.
func methodName(m string) string {
	switch m {
	case "shlpt":
		return "SHLPT"
	case "per-task":
		return "Per-task prompt"
	case "continual-init":
		return "Continual init"
	case "progprompt":
		return "ProgPrompt"
	case "l2p":
		return "L2P"
	case "coda":
		return "CODA-Prompt"
	case "finetune":
		return "Finetune"
	case "ewc":
		return "EWC"
	case "er":
		return "ER"
	}
	return m
}

// groupKey is the canonical JSON of what a run's results depend on besides
// its seed: the settings but the paths and seed, the model's and the data's
// fingerprints.
func groupKey(r *Run) string {
	s := map[string]any{}
	for k, v := range r.Settings {
		if !notGrouped[k] {
			s[k] = v
		}
	}
	s["model_sha256"] = r.Info.ModelSHA256
	s["data_sha256"] = r.Info.DataSHA256
	b, _ := json.Marshal(s) // maps marshal with sorted keys
	return string(b)
}

// GroupRuns groups runs by everything but the seed. Two runs of one group
// with the same seed clash: the first (by directory) is kept and the other
// becomes a problem.
func GroupRuns(runs []*Run, paper *Paper) (groups []*Group, problems []string) {
	byKey := map[string]*Group{}
	for _, r := range runs {
		k := groupKey(r)
		g := byKey[k]
		if g == nil {
			g = &Group{Key: k, Settings: r.Settings}
			byKey[k] = g
			groups = append(groups, g)
		}
		clash := false
		for _, o := range g.Runs {
			if o.Seed() == r.Seed() {
				problems = append(problems, fmt.Sprintf("%s: same settings and seed %d as %s; left out", r.Dir, r.Seed(), o.Dir))
				clash = true
			}
		}
		if !clash {
			g.Runs = append(g.Runs, r)
		}
	}
	for _, g := range groups {
		sort.Slice(g.Runs, func(i, j int) bool { return g.Runs[i].Seed() < g.Runs[j].Seed() })
		g.describe()
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Key < groups[j].Key })
	for i, g := range groups {
		g.ID = fmt.Sprintf("g%02d", i+1)
	}
	return groups, problems
}

// describe fills what places and qualifies a group.
func (g *Group) describe() {
	first := g.Runs[0]
	c := first.Info.Settings
	g.Method, g.Benchmark, g.Order, g.Tasks = c.Method, c.Benchmark, c.Order, c.Tasks
	g.Variant = variant(g.Settings, g.Method, g.Benchmark)
	g.Model = ReadModel(c.Model)
	if !g.Model.PaperModel {
		g.Differs = append(g.Differs, g.Model.Name)
	}
	g.Differs = append(g.Differs, settingsDiff(g.Settings, g.Method, g.Benchmark)...)
	if g.Benchmark != "" {
		if want, err := rundir.SequenceTasks(g.Benchmark, g.Order); err == nil && !reflect.DeepEqual(want, g.Tasks) {
			g.Differs = append(g.Differs, "tasks "+strings.Join(g.Tasks, ","))
		}
	}
	// Seeds: every run complete, and the paper's three.
	for _, r := range g.Runs {
		if r.State != StateComplete {
			g.Incomplete = append(g.Incomplete, fmt.Sprintf("seed %d %s", r.Seed(), r.State))
		}
	}
	have := map[uint64]bool{}
	for _, s := range g.Seeds() {
		have[s] = true
	}
	var missing, extra []string
	for _, s := range PaperSeeds {
		if !have[s] {
			missing = append(missing, fmt.Sprint(s))
		}
	}
	for _, s := range g.Seeds() {
		if !slices.Contains(PaperSeeds, s) {
			extra = append(extra, fmt.Sprint(s))
		}
	}
	// The paper's seeds are expected only of a group in the paper's
	// setting; another setting has no expected seeds.
	if len(missing) > 0 && len(g.Differs) == 0 {
		g.Incomplete = append(g.Incomplete, "seeds "+strings.Join(missing, ",")+" missing")
	}
	if len(extra) > 0 {
		g.Differs = append(g.Differs, "seeds "+strings.Join(extra, ","))
	}
	// Primary metrics.
	for _, r := range g.Runs {
		if r.Results == nil {
			continue
		}
		for i, m := range r.Results.Metric {
			if m != "" && m != PaperPrimary(r.Results.Tasks[i]) {
				f := fmt.Sprintf("%s scored by %s, the paper by %s", r.Results.Tasks[i], m, PaperPrimary(r.Results.Tasks[i]))
				if !slices.Contains(g.Flags, f) {
					g.Flags = append(g.Flags, f)
				}
			}
		}
	}
}

// variant names a group's ablations: every true no_* flag of the method's
// settings ("-STT"), and all_dissimilar outside the Negative Transfer
// benchmark (where it is the benchmark's setting).
func variant(s map[string]any, method, benchmark string) string {
	block, _ := s[methodKey(method)].(map[string]any)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(block)) {
		if v, ok := block[k].(bool); ok && v && strings.HasPrefix(k, "no_") {
			out = append(out, "-"+strings.ToUpper(strings.TrimPrefix(k, "no_")))
		}
	}
	if v, ok := block["all_dissimilar"].(bool); ok && v && benchmark != "nt" {
		out = append(out, "all-dissimilar")
	}
	return strings.Join(out, " ")
}

// methodKey is the name of a method's settings block in config.json: the
// method's name.
func methodKey(method string) string { return method }

// settingsDiff lists the settings of a group that differ from the paper's
// (rundir.DefaultConfig of its benchmark with the method's defaults),
// leaving out what is not a setting of the paper's experiment: the paths
// and seed, the sequence (placed by benchmark and order), the ablations
// (the variant), and the settings blocks of other methods.
func settingsDiff(s map[string]any, method, benchmark string) []string {
	name := benchmark
	if name == "" {
		name = "std"
	}
	def, err := rundir.DefaultConfigFor(name, method)
	if err != nil {
		return []string{"benchmark " + benchmark}
	}
	var want map[string]any
	b, _ := json.Marshal(def)
	json.Unmarshal(b, &want)
	skip := map[string]bool{"method": true, "tasks": true, "benchmark": true, "order": true, "eval_batch_size": true}
	blocks := map[string]bool{}
	for _, m := range rundir.Methods() {
		blocks[methodKey(m)] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		if notGrouped[k] || skip[k] {
			continue
		}
		w, ok := want[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s %s", k, jsonString(s[k])))
			continue
		}
		if blocks[k] {
			if k != methodKey(method) {
				continue
			}
			sb, _ := s[k].(map[string]any)
			wb, _ := w.(map[string]any)
			for _, kk := range slices.Sorted(maps.Keys(sb)) {
				if strings.HasPrefix(kk, "no_") || kk == "all_dissimilar" {
					continue
				}
				if !reflect.DeepEqual(sb[kk], wb[kk]) {
					out = append(out, fmt.Sprintf("%s.%s %s", k, kk, jsonString(sb[kk])))
				}
			}
			continue
		}
		if !reflect.DeepEqual(s[k], w) {
			out = append(out, fmt.Sprintf("%s %s", k, jsonString(s[k])))
		}
	}
	return out
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Model is what the report knows of a run's model.
type Model struct {
	Name string
	// PaperModel says it is the original T5 v1.0 t5-large, the paper's.
	PaperModel bool
}

// ReadModel reads the model folder's config.json and names the model:
// "t5-large v1.0" when its shape and feed-forward are the original
// t5-large's.
func ReadModel(dir string) Model {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return Model{Name: "model " + filepath.Base(dir) + " (config.json not readable)"}
	}
	var c struct {
		DModel     int     `json:"d_model"`
		DFF        int     `json:"d_ff"`
		NumLayers  int     `json:"num_layers"`
		NumDecoder *int    `json:"num_decoder_layers"`
		NumHeads   int     `json:"num_heads"`
		Vocab      int     `json:"vocab_size"`
		FF         *string `json:"feed_forward_proj"`
		Tied       *bool   `json:"tie_word_embeddings"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Model{Name: "model " + filepath.Base(dir) + " (config.json not readable)"}
	}
	dec := c.NumLayers
	if c.NumDecoder != nil {
		dec = *c.NumDecoder
	}
	relu := c.FF == nil || *c.FF == "relu"
	tied := c.Tied == nil || *c.Tied
	if c.DModel == 1024 && c.DFF == 4096 && c.NumLayers == 24 && dec == 24 && c.NumHeads == 16 && c.Vocab == 32128 && relu && tied {
		return Model{Name: "t5-large v1.0", PaperModel: true}
	}
	kind := "v1.0"
	if !relu || !tied {
		kind = "v1.1-style"
	}
	return Model{Name: fmt.Sprintf("T5 %s d_model %d, %d layers", kind, c.DModel, c.NumLayers)}
}
