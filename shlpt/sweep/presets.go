package sweep

import (
	"fmt"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// PaperSeeds are the seeds of every experiment of the paper (reference §0).
var PaperSeeds = []uint64{42, 142, 242}

// Preset is one of the paper's experiments as a plan. Presets name
// methods and train flags only, so they follow whatever the train command
// does with them.
type Preset struct {
	Name  string
	Title string
	// Note says what the preset runs and what it assumes; it is stored in
	// plan.json.
	Note string
	// Tasks, when the preset takes them, are the tasks its pairs are made
	// of (table10) and Pairs the source→target pairs (table5); the plan
	// command can replace them.
	Tasks []string
	Pairs [][2]string
	build func(p Preset) []Block
}

// Spec builds the preset's spec with its seeds.
func (p Preset) Spec() Spec {
	return Spec{Name: p.Name, Note: p.Note, Blocks: p.build(p)}
}

// tableMethods are the rows of Tables 2 and 3: the seven baselines and
// SHLPT, each with its defaults.
var tableMethods = []string{"finetune", "ewc", "er", "l2p", "coda", "per-task", "progprompt", "shlpt"}

// ablations are the rows of Table 4: SHLPT and SHLPT without one part.
var ablations = []Axis{
	MethodVariant("shlpt"),
	{Name: "shlpt-no-ase", Args: []string{"--method", "shlpt", "--no-ase"}},
	{Name: "shlpt-no-stt", Args: []string{"--method", "shlpt", "--no-stt"}},
	{Name: "shlpt-no-hsc-no-asc", Args: []string{"--method", "shlpt", "--no-hsc", "--no-asc"}},
	{Name: "shlpt-no-hsc", Args: []string{"--method", "shlpt", "--no-hsc"}},
	{Name: "shlpt-no-asc", Args: []string{"--method", "shlpt", "--no-asc"}},
}

// transfers are the columns of Table 5: how a target task uses a source
// task's prompt, each an ordinary two-task run. The contrastive losses
// alone treat the source as dissimilar (--all-dissimilar), so nothing of
// its prompt is mixed in.
var transfers = []Axis{
	MethodVariant("per-task"),
	MethodVariant("continual-init"),
	MethodVariant("progprompt"),
	{Name: "hsc", Args: []string{"--method", "shlpt", "--all-dissimilar", "--no-asc"}},
	{Name: "asc", Args: []string{"--method", "shlpt", "--all-dissimilar", "--no-hsc"}},
	{Name: "hsc-asc", Args: []string{"--method", "shlpt", "--all-dissimilar"}},
}

// table11Deltas are the δ values of the threshold study.
var table11Deltas = []string{"0", "0.02", "0.04", "0.06", "0.08", "0.1", "0.2"}

// Presets are the paper's experiments.
var Presets = []Preset{
	{
		Name:  "table2",
		Title: "Table 2: Standard CL (orders 1-3) and Large Number of Tasks (orders 4-6), 8 methods",
		Note:  "every method of Table 2 with its defaults on --benchmark std and long, all orders, seeds 42, 142, 242",
		build: func(Preset) []Block {
			return []Block{{Sequences: append(benchmarkOrders("std"), benchmarkOrders("long")...), Variants: methods(tableMethods), Seeds: PaperSeeds}}
		},
	},
	{
		Name:  "table3",
		Title: "Table 3: Negative Transfer benchmark (sequences 1-3), 8 methods",
		Note:  "every method of Table 3 with its defaults on --benchmark nt (all-dissimilar for SHLPT, δ 1.5), all orders, seeds 42, 142, 242",
		build: func(Preset) []Block {
			return []Block{{Sequences: benchmarkOrders("nt"), Variants: methods(tableMethods), Seeds: PaperSeeds}}
		},
	},
	{
		Name:  "table4",
		Title: "Table 4: ablations of SHLPT on Standard CL order 1 and Negative Transfer sequences 1-3",
		Note: "SHLPT, -ASE (--no-ase), -STT (--no-stt), -HSC -ASC (both contrastive losses off), -HSC, -ASC on std order 1 and nt orders 1-3, seeds 42, 142, 242; " +
			"the ablations mean what the train flags mean (docs/shlpt.md)",
		build: func(Preset) []Block {
			return []Block{{Sequences: append([]Axis{BenchmarkSequence("std", 1)}, benchmarkOrders("nt")...), Variants: ablations, Seeds: PaperSeeds}}
		},
	},
	{
		Name:  "table5",
		Title: "Table 5: transfer algorithms on source→target pairs",
		Note: "each pair is a two-task run (--tasks source,target, Standard CL settings) with per-task prompts (the baseline), continual initialization, ProgPrompt, " +
			"HSC alone, ASC alone and HSC+ASC (SHLPT with --all-dissimilar), seeds 42, 142, 242; the pairs are this preset's choice " +
			"(two sentiment and two NLI pairs, four adjacent pairs of the Negative Transfer sequences), --pairs replaces them",
		Pairs: [][2]string{
			{"sst2", "imdb"}, {"imdb", "sst2"}, {"mnli", "rte"}, {"rte", "cb"},
			{"rte", "qqp"}, {"qqp", "cb"}, {"multirc", "rte"}, {"wic", "mnli"},
		},
		build: func(p Preset) []Block {
			var seqs []Axis
			for _, pr := range p.Pairs {
				seqs = append(seqs, TaskSequence([]string{pr[0], pr[1]}))
			}
			return []Block{{Sequences: seqs, Variants: transfers, Seeds: PaperSeeds}}
		},
	},
	{
		Name:  "table10",
		Title: "Table 10 / Figure 1: transfer matrix of continual initialization over 10 tasks",
		Note: "every ordered pair of the tasks as a two-task continual-init run (Standard CL settings), and per target a one-task per-task run " +
			"(the baseline row: a per-task prompt does not depend on what came before), seeds 42, 142, 242; the tasks are the Large Number " +
			"of Tasks sequence less its five large classification tasks, --tasks replaces them",
		Tasks: []string{"mnli", "cb", "wic", "copa", "qqp", "boolq", "rte", "imdb", "sst2", "multirc"},
		build: func(p Preset) []Block {
			var pairs, singles []Axis
			for _, src := range p.Tasks {
				singles = append(singles, TaskSequence([]string{src}))
				for _, dst := range p.Tasks {
					if src != dst {
						pairs = append(pairs, TaskSequence([]string{src, dst}))
					}
				}
			}
			return []Block{
				{Sequences: singles, Variants: methods([]string{"per-task"}), Seeds: PaperSeeds},
				{Sequences: pairs, Variants: methods([]string{"continual-init"}), Seeds: PaperSeeds},
			}
		},
	},
	{
		Name:  "table11",
		Title: "Table 11: SHLPT's similarity threshold δ on Standard CL order 1",
		Note:  "SHLPT on std order 1 with δ in {" + strings.Join(table11Deltas, ", ") + "}, seeds 42, 142, 242; --set delta=... replaces the values",
		build: func(Preset) []Block {
			return []Block{{Sequences: []Axis{BenchmarkSequence("std", 1)}, Variants: methods([]string{"shlpt"}),
				Sets: []Set{{Key: "delta", Values: table11Deltas}}, Seeds: PaperSeeds}}
		},
	},
}

// LookupPreset returns the preset named name.
func LookupPreset(name string) (Preset, error) {
	var names []string
	for _, p := range Presets {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Preset{}, fmt.Errorf("unknown preset %q (presets: %s)", name, strings.Join(names, ", "))
}

// benchmarkOrders are the sequences of every order of a benchmark.
func benchmarkOrders(name string) []Axis {
	b, err := rundir.LookupBenchmark(name)
	if err != nil {
		panic(err) // the presets name the benchmarks of rundir.Benchmarks
	}
	var orders []int
	for o := range b.Orders {
		orders = append(orders, o)
	}
	sort.Ints(orders)
	out := make([]Axis, len(orders))
	for i, o := range orders {
		out[i] = BenchmarkSequence(name, o)
	}
	return out
}

// BenchmarkOrders lists a benchmark's orders as sequences (all of them
// when orders is empty); an unknown benchmark or order is an error naming
// the known ones.
func BenchmarkOrders(name string, orders []int) ([]Axis, error) {
	if _, err := rundir.LookupBenchmark(name); err != nil {
		return nil, err
	}
	if len(orders) == 0 {
		return benchmarkOrders(name), nil
	}
	var out []Axis
	for _, o := range orders {
		if _, err := rundir.SequenceTasks(name, o); err != nil {
			return nil, err
		}
		out = append(out, BenchmarkSequence(name, o))
	}
	return out, nil
}

func methods(names []string) []Axis {
	out := make([]Axis, len(names))
	for i, n := range names {
		out[i] = MethodVariant(n)
	}
	return out
}
