package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/jsonfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// State is where a run stands.
type State string

const (
	// Pending: nothing of the run exists yet.
	Pending State = "pending"
	// Running: a process holds the run directory's lock.
	Running State = "running"
	// Interrupted: the run began and stopped before its end; starting it
	// again resumes it.
	Interrupted State = "interrupted"
	// Complete: results.json says every task is done.
	Complete State = "complete"
	// Failed: the last attempt ended with an error (recorded in
	// failures/<id>.json).
	Failed State = "failed"
)

// States lists the states in the order status prints them.
var States = []State{Pending, Running, Interrupted, Complete, Failed}

// Failure is failures/<id>.json: how a run's last attempt ended.
type Failure struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Dir      string `json:"dir"`
	Error    string `json:"error"`
	ExitCode int    `json:"exit_code"`
	Host     string `json:"host"`
	Time     string `json:"time"`
}

// Progress is what metrics.jsonl and results.json say of a run.
type Progress struct {
	Tasks      int     `json:"tasks"`       // tasks in the sequence
	TasksDone  int     `json:"tasks_done"`  // finished tasks
	Task       string  `json:"task"`        // the task of the last epoch line
	TaskIndex  int     `json:"task_index"`  // its index
	Epoch      int     `json:"epoch"`       // the last epoch line's epoch (1-based; 0: none yet)
	Epochs     int     `json:"epochs"`      // epochs per task (an upper bound: early stopping)
	EpochLines int     `json:"epoch_lines"` // lines of metrics.jsonl
	Average    float64 `json:"average_test,omitempty"`
	Seconds    float64 `json:"train_seconds"` // training and evaluation time so far
}

// RunStatus is one run's state.
type RunStatus struct {
	Index    int       `json:"index"`
	ID       string    `json:"id"`
	Dir      string    `json:"dir"`
	State    State     `json:"state"`
	Error    string    `json:"error,omitempty"`
	Progress *Progress `json:"progress,omitempty"`
}

// Status reads run i's state from its run directory, its lock and its
// failure record.
func (p *Plan) Status(i int) RunStatus {
	r := p.Runs[i]
	st := RunStatus{Index: i, ID: r.ID, Dir: r.Dir}
	dir := p.RunDir(i)
	prog, complete, perr := progress(dir)
	st.Progress = prog
	held, lerr := LockHeld(filepath.Join(dir, rundir.LockFile))
	fail, ferr := p.ReadFailure(r.ID)
	switch {
	case complete:
		st.State = Complete
	case lerr != nil:
		st.State, st.Error = Failed, lerr.Error()
	case held:
		st.State = Running
	case ferr != nil:
		st.State, st.Error = Failed, ferr.Error()
	case fail != nil:
		st.State, st.Error = Failed, fail.Error
	case perr != nil:
		st.State, st.Error = Failed, perr.Error()
	case prog != nil:
		st.State = Interrupted
	default:
		st.State = Pending
	}
	return st
}

// progress reads a run directory: nil without a config.json (nothing
// began), and whether results.json says the run is complete.
func progress(dir string) (*Progress, bool, error) {
	info, err := rundir.ReadInfo(dir)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, rundir.ConfigFile)); errors.Is(serr, os.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	p := &Progress{Tasks: len(info.Settings.Tasks), Epochs: info.Settings.Epochs}
	lines, err := rundir.ReadMetrics(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return p, false, err
	}
	p.EpochLines = len(lines)
	for _, l := range lines {
		p.Seconds += l.TrainSeconds + l.EvalSeconds
	}
	if n := len(lines); n > 0 {
		last := lines[n-1]
		p.Task, p.TaskIndex, p.Epoch = last.Task, last.TaskIndex, last.Epoch+1
	}
	res, err := rundir.ReadResults(dir)
	if errors.Is(err, os.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	p.TasksDone = res.StagesDone
	p.Average = res.Average["test"]
	return p, res.Complete, nil
}

// LockHeld reports whether a process holds the flock of the file at
// path; an absent file is not held. It never creates the file, and takes
// a shared lock only for the instant of the probe.
func LockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("probing the lock %s: %w", path, err)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}

func (p *Plan) failurePath(id string) string {
	return filepath.Join(p.Dir, FailuresDir, id+".json")
}

// ReadFailure reads a run's failure record (nil when there is none).
func (p *Plan) ReadFailure(id string) (*Failure, error) {
	path := p.failurePath(id)
	var f Failure
	err := jsonfile.Read(path, 1<<20, "a failure record", &f)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// RecordFailure writes run i's failure record.
func (p *Plan) RecordFailure(i int, msg string, exitCode int) error {
	r := p.Runs[i]
	host, _ := os.Hostname()
	f := Failure{Index: i, ID: r.ID, Dir: r.Dir, Error: msg, ExitCode: exitCode, Host: host,
		Time: time.Now().UTC().Format(time.RFC3339)}
	b, _ := json.MarshalIndent(f, "", "  ")
	if err := os.MkdirAll(filepath.Join(p.Dir, FailuresDir), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(p.failurePath(r.ID), append(b, '\n'))
}

// ClearFailure removes run i's failure record, as a new attempt begins.
func (p *Plan) ClearFailure(i int) error {
	err := os.Remove(p.failurePath(p.Runs[i].ID))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Totals counts runs per state.
func Totals(runs []RunStatus) map[State]int {
	t := map[State]int{}
	for _, s := range States {
		t[s] = 0
	}
	for _, r := range runs {
		t[r.State]++
	}
	return t
}

// Lock takes the plan's exclusive lock (held by `sweep run` so that two
// executors never share a plan); it ends with the process or Close.
func (p *Plan) Lock() (*os.File, error) {
	path := filepath.Join(p.Dir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("plan %s is being run by another 'sweep run' (its lock %s is held)", p.Dir, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}
