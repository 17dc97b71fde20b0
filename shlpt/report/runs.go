package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/sweep"
)

// Run is one run directory as the report sees it.
type Run struct {
	Dir  string
	Info *rundir.Info
	// Settings is config.json's settings as generic JSON, so that grouping
	// does not depend on the settings' Go type.
	Settings map[string]any
	Results  *rundir.Results // nil before the first task ends
	Epochs   []rundir.EpochLine
	// State is complete, partial (running or interrupted) or not started.
	State string
	// FWTFromReport is set when the report measured the run's FWT against
	// a per-task run (FillFWT): results.json had none.
	FWTFromReport bool
}

// Run states.
const (
	StateComplete   = "complete"
	StatePartial    = "partial"
	StateNotStarted = "not started"
)

// Expand turns the report's arguments (run directories, plan directories,
// glob patterns) into run directories. Arguments that name nothing, and
// plan lines that cannot be read, become one-line problems.
func Expand(args []string) (dirs []string, problems []string) {
	seen := map[string]bool{}
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, a := range args {
		matches := []string{a}
		if strings.ContainsAny(a, "*?[") {
			m, err := filepath.Glob(a)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: bad pattern: %v", a, err))
				continue
			}
			if len(m) == 0 {
				problems = append(problems, fmt.Sprintf("%s: the pattern matches nothing", a))
				continue
			}
			matches = m
		}
		for _, d := range matches {
			st, err := os.Stat(d)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s: %v", d, errors.Unwrap(err)))
			case !st.IsDir():
				problems = append(problems, fmt.Sprintf("%s is not a directory", d))
			case exists(filepath.Join(d, sweep.PlanFile)):
				p, err := sweep.Load(d)
				if err != nil {
					problems = append(problems, err.Error())
					continue
				}
				for i := range p.Runs {
					add(p.RunDir(i))
				}
			default:
				add(filepath.Clean(d))
			}
		}
	}
	return dirs, problems
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Load reads run directories. A directory that is not a run, holds a run
// of another schema or has unreadable files is a one-line problem naming
// it; the others are returned, sorted by directory.
func Load(dirs []string) (runs []*Run, problems []string) {
	for _, d := range dirs {
		r, err := loadRun(d)
		if err != nil {
			problems = append(problems, oneLine(err))
			continue
		}
		runs = append(runs, r)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Dir < runs[j].Dir })
	return runs, problems
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func loadRun(dir string) (*Run, error) {
	if !exists(dir) {
		return nil, fmt.Errorf("%s: no such run directory (not started?)", dir)
	}
	info, err := rundir.ReadInfo(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	r := &Run{Dir: dir, Info: info, State: StateNotStarted}
	b, err := json.Marshal(info.Settings)
	if err == nil {
		err = json.Unmarshal(b, &r.Settings)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: settings: %v", dir, err)
	}
	if exists(filepath.Join(dir, rundir.ResultsFile)) {
		if r.Results, err = rundir.ReadResults(dir); err != nil {
			return nil, fmt.Errorf("%s: %v", dir, err)
		}
		r.State = StatePartial
		if r.Results.Complete {
			r.State = StateComplete
		}
		if len(r.Results.Tasks) != len(info.Settings.Tasks) {
			return nil, fmt.Errorf("%s: results.json has %d tasks, config.json %d", dir, len(r.Results.Tasks), len(info.Settings.Tasks))
		}
	}
	if exists(filepath.Join(dir, rundir.MetricsFile)) {
		if r.Epochs, err = rundir.ReadMetrics(dir); err != nil {
			return nil, fmt.Errorf("%s: %v", dir, err)
		}
	}
	return r, nil
}

// Seed is the run's seed.
func (r *Run) Seed() uint64 { return r.Info.Settings.Seed }

// FinalTest is the test score of every task after the last stage (nil
// entries where the run has none).
func (r *Run) FinalTest() []*float64 {
	if r.Results == nil || r.Results.StagesDone == 0 {
		return nil
	}
	return r.Results.Matrix.Test[len(r.Results.Matrix.Test)-1]
}
