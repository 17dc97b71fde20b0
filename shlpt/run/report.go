package run

import (
	"fmt"
	"io"
	"time"

	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// Reporter shows a run's progress. The runner calls it from one goroutine.
type Reporter interface {
	// BeginEpoch starts an epoch of task (index i of n) with steps steps.
	BeginEpoch(task string, i, n, epoch, epochs, steps int)
	// Step reports that step (1-based) of the epoch is done.
	Step(step int, loss, tokensPerS float64)
	// EndEpoch reports the finished epoch.
	EndEpoch(l rundir.EpochLine)
	// Logf reports anything else worth a line.
	Logf(format string, args ...any)
}

// LineReporter prints plain lines: one per epoch and per message, and a
// step line at most every interval (for logs and terminals that are not).
type LineReporter struct {
	W        io.Writer
	Interval time.Duration
	last     time.Time
	steps    int
	head     string
}

func (r *LineReporter) BeginEpoch(task string, i, n, epoch, epochs, steps int) {
	r.head = fmt.Sprintf("task %d/%d %s epoch %d/%d", i+1, n, task, epoch+1, epochs)
	r.steps = steps
	r.last = time.Now()
}

func (r *LineReporter) Step(step int, loss, tokensPerS float64) {
	if r.Interval <= 0 || time.Since(r.last) < r.Interval || step == r.steps {
		return
	}
	r.last = time.Now()
	fmt.Fprintf(r.W, "%s step %d/%d loss %.4f %.0f tokens/s\n", r.head, step, r.steps, loss, tokensPerS)
}

func (r *LineReporter) EndEpoch(l rundir.EpochLine) {
	fmt.Fprintf(r.W, "%s\n", FormatEpoch(l))
}

func (r *LineReporter) Logf(format string, args ...any) {
	fmt.Fprintf(r.W, format+"\n", args...)
}

// FormatEpoch is the one-line summary of an epoch.
func FormatEpoch(l rundir.EpochLine) string {
	s := fmt.Sprintf("task %d %s epoch %d: loss %.4f", l.TaskIndex+1, l.Task, l.Epoch+1, l.Loss)
	for _, name := range []string{"ce", "hsc", "asc"} {
		if v, ok := l.Parts[name]; ok {
			s += fmt.Sprintf(" %s %.4f", name, v)
		}
	}
	if l.Valid != nil {
		s += fmt.Sprintf(", valid %.2f (best %.2f)", *l.Valid, *l.Best)
	}
	return s + fmt.Sprintf(", %.0f tokens/s, %.1fs", l.TokensPerS, l.TrainSeconds+l.EvalSeconds)
}

// quiet reports nothing.
type quiet struct{}

func (quiet) BeginEpoch(string, int, int, int, int, int) {}
func (quiet) Step(int, float64, float64)                 {}
func (quiet) EndEpoch(rundir.EpochLine)                  {}
func (quiet) Logf(string, ...any)                        {}

// Quiet is a Reporter that reports nothing.
var Quiet Reporter = quiet{}
