package sweep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Outcome is how one execution of a run ended.
type Outcome int

const (
	// Done: the run is complete (now, or it already was).
	Done Outcome = iota
	// Stopped: a signal stopped the run after a checkpoint; executing it
	// again resumes it.
	Stopped
	// Busy: another process holds the run's lock; nothing was done.
	Busy
	// Broke: the run failed; the failure is recorded.
	Broke
)

// ExitStopped is the exit code of `sweep exec` for a run stopped by a
// signal (EX_TEMPFAIL): it resumes when executed again.
const ExitStopped = 75

// Execute runs line i of the plan with train (which gets the train
// arguments, --out included): a complete run is not started again, a run
// another process holds is left alone, a failure is recorded in
// failures/<id>.json and cleared when an attempt begins. stopped tells
// whether train's error means that a signal stopped the run.
func (p *Plan) Execute(i int, train func(args []string) error, stopped func(error) bool) (Outcome, error) {
	if _, err := p.Run(i); err != nil {
		return Broke, err
	}
	st := p.Status(i)
	switch st.State {
	case Complete:
		return Done, nil
	case Running:
		return Busy, fmt.Errorf("run %d (%s) is being run by another process (its lock %s is held)", i, p.Runs[i].Dir,
			filepath.Join(p.RunDir(i), rundir.LockFile))
	}
	if err := p.ClearFailure(i); err != nil {
		return Broke, err
	}
	if err := os.MkdirAll(filepath.Dir(p.RunDir(i)), 0o755); err != nil {
		return Broke, p.fail(i, err)
	}
	err := train(p.TrainArgs(i))
	switch {
	case err != nil && stopped(err):
		return Stopped, err
	case err != nil:
		return Broke, p.fail(i, err)
	}
	if st := p.Status(i); st.State != Complete {
		return Broke, p.fail(i, fmt.Errorf("train ended without error but the run is %s", st.State))
	}
	return Done, nil
}

// fail records err as run i's failure and returns it.
func (p *Plan) fail(i int, err error) error {
	if rerr := p.RecordFailure(i, err.Error(), 1); rerr != nil {
		return errors.Join(err, fmt.Errorf("recording the failure: %w", rerr))
	}
	return err
}
