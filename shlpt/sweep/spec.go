// Package sweep holds grids of lifelong runs: a plan (a spec expanded into
// runs, each an ordinary `shlpt-vk train` invocation with its own run
// directory), the files schedulers read (a Slurm job array, a Kubernetes
// Indexed Job, a GNU parallel list), the state of each run read from its
// run directory (shlpt/rundir), and a local executor that starts one
// process per run. It never links the runner: every run is its own
// process, so a scheduler sees plain commands that resume.
package sweep

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"strings"
)

// MaxRuns is the largest plan written without Force.
const MaxRuns = 10000

// Spec is what a plan is made of: blocks of grids and the train arguments
// every run shares. A preset is a Spec; so is a custom grid.
type Spec struct {
	Name string `json:"name"` // the preset's name, or "grid"
	// Note says what the preset reproduces and what it assumes.
	Note string `json:"note,omitempty"`
	// Common are train arguments every run gets (--model, --data, ...).
	Common []string `json:"common"`
	Blocks []Block  `json:"blocks"`
}

// Block is one grid: every sequence × variant × combination of settings ×
// seed is a run.
type Block struct {
	Sequences []Axis   `json:"sequences"`
	Variants  []Axis   `json:"variants"`
	Sets      []Set    `json:"sets,omitempty"`
	Seeds     []uint64 `json:"seeds"`
}

// Axis is one value of a grid axis: a name that becomes a component of the
// run directory and the train arguments it stands for.
type Axis struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
}

// Set is a train flag (named without its dashes) and the values a grid
// takes it through.
type Set struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

// Run is one line of a plan: a train invocation and where it writes.
type Run struct {
	// ID is a short hash of the run's arguments: the same run has the same
	// ID in every plan.
	ID string `json:"id"`
	// Dir is the run directory, relative to the plan's runs folder.
	Dir string `json:"dir"`
	// Args are the train arguments, without --out.
	Args []string `json:"args"`
}

// BenchmarkSequence is the axis value of a benchmark's order: std-o1 runs
// --benchmark std --order 1.
func BenchmarkSequence(benchmark string, order int) Axis {
	return Axis{Name: fmt.Sprintf("%s-o%d", benchmark, order),
		Args: []string{"--benchmark", benchmark, "--order", fmt.Sprint(order)}}
}

// TaskSequence is the axis value of an explicit task list: cb-copa runs
// --tasks cb,copa.
func TaskSequence(tasks []string) Axis {
	return Axis{Name: strings.Join(tasks, "-"), Args: []string{"--tasks", strings.Join(tasks, ",")}}
}

// MethodVariant is the variant that runs a method with its defaults.
func MethodVariant(method string, extra ...string) Axis {
	return Axis{Name: method, Args: append([]string{"--method", method}, extra...)}
}

// Expand lists the spec's runs in a fixed order: block by block, then
// sequence, variant, settings (the first key slowest) and seed. Two runs
// with one directory or with the same arguments are an error, as is an
// empty grid or (without force) one of more than MaxRuns runs.
func (s Spec) Expand(force bool) ([]Run, error) {
	n := 0
	for bi, b := range s.Blocks {
		c := len(b.Sequences) * len(b.Variants) * len(b.Seeds)
		for _, set := range b.Sets {
			if len(set.Values) == 0 {
				return nil, fmt.Errorf("setting %s has no values", set.Key)
			}
			c *= len(set.Values)
		}
		if c == 0 {
			return nil, fmt.Errorf("empty grid: block %d has %d sequences, %d methods and %d seeds", bi+1, len(b.Sequences), len(b.Variants), len(b.Seeds))
		}
		n += c
	}
	if n == 0 {
		return nil, fmt.Errorf("empty grid: no runs")
	}
	if n > MaxRuns && !force {
		return nil, fmt.Errorf("the grid has %d runs, more than %d: give --force to write it", n, MaxRuns)
	}
	runs := make([]Run, 0, n)
	byDir := map[string]int{}
	byArgs := map[string]int{}
	for _, b := range s.Blocks {
		for _, seq := range b.Sequences {
			for _, v := range b.Variants {
				for _, combo := range combos(b.Sets) {
					for _, seed := range b.Seeds {
						r := s.run(seq, v, combo, seed)
						key := strings.Join(r.Args, "\x00")
						if i, dup := byArgs[key]; dup {
							return nil, fmt.Errorf("run %d repeats run %d (%s): the same arguments twice", len(runs), i, strings.Join(r.Args, " "))
						}
						if i, dup := byDir[r.Dir]; dup {
							return nil, fmt.Errorf("runs %d and %d would share the run directory %s (give the axes distinct names)", i, len(runs), r.Dir)
						}
						byDir[r.Dir], byArgs[key] = len(runs), len(runs)
						runs = append(runs, r)
					}
				}
			}
		}
	}
	return runs, nil
}

// run builds one run of the grid.
func (s Spec) run(seq, v Axis, combo []setValue, seed uint64) Run {
	args := append([]string{}, s.Common...)
	args = append(args, seq.Args...)
	args = append(args, v.Args...)
	parts := []string{seq.Name, v.Name}
	var labels []string
	for _, kv := range combo {
		args = append(args, "--"+kv.key+"="+kv.value)
		if kv.axis {
			labels = append(labels, kv.key+"="+dirSafe(kv.value))
		}
	}
	if len(labels) > 0 {
		parts = append(parts, strings.Join(labels, ","))
	}
	args = append(args, "--seed", fmt.Sprint(seed))
	parts = append(parts, fmt.Sprintf("s%d", seed))
	h := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	return Run{ID: hex.EncodeToString(h[:6]), Dir: path.Join(parts...), Args: args}
}

// setValue is one setting of a run; axis says whether its key takes more
// than one value in the grid (only those name the run directory).
type setValue struct {
	key, value string
	axis       bool
}

// combos is the cross product of the settings' values, the first key
// varying slowest; one empty combination without settings.
func combos(sets []Set) [][]setValue {
	out := [][]setValue{nil}
	for _, s := range sets {
		var next [][]setValue
		for _, prefix := range out {
			for _, v := range s.Values {
				c := append(append([]setValue{}, prefix...), setValue{s.Key, v, len(s.Values) > 1})
				next = append(next, c)
			}
		}
		out = next
	}
	return out
}

// dirSafe keeps a value readable in a directory name: letters, digits and
// . _ + - stay, anything else becomes _. Values that collide this way are
// caught as runs sharing a directory.
func dirSafe(v string) string {
	b := []byte(v)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '+' || c == '-'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// ApplySets puts the settings into every block: a key the block already
// sweeps takes the new values, others are added. Keys keep the order in
// which they were given.
func (s *Spec) ApplySets(sets []Set) {
	for bi := range s.Blocks {
		b := &s.Blocks[bi]
		for _, set := range sets {
			replaced := false
			for i := range b.Sets {
				if b.Sets[i].Key == set.Key {
					b.Sets[i].Values, replaced = append([]string{}, set.Values...), true
				}
			}
			if !replaced {
				b.Sets = append(b.Sets, Set{Key: set.Key, Values: append([]string{}, set.Values...)})
			}
		}
	}
}

// KeepVariants keeps only the named variants (methods) in every block; a
// name no block has is an error naming it and the spec's variants.
func (s *Spec) KeepVariants(names []string) error {
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	have := map[string]bool{}
	for bi := range s.Blocks {
		b := &s.Blocks[bi]
		var vs []Axis
		for _, v := range b.Variants {
			have[v.Name] = true
			if keep[v.Name] {
				vs = append(vs, v)
			}
		}
		b.Variants = vs
	}
	for _, n := range names {
		if !have[n] {
			var all []string
			for h := range have {
				all = append(all, h)
			}
			sort.Strings(all)
			return fmt.Errorf("%s has no method %q (it has %s)", s.Name, n, strings.Join(all, ", "))
		}
	}
	var blocks []Block
	for _, b := range s.Blocks {
		if len(b.Variants) > 0 {
			blocks = append(blocks, b)
		}
	}
	s.Blocks = blocks
	return nil
}

// SetSeeds replaces every block's seeds.
func (s *Spec) SetSeeds(seeds []uint64) {
	for bi := range s.Blocks {
		s.Blocks[bi].Seeds = append([]uint64{}, seeds...)
	}
}
