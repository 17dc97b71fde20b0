package main

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/shlpt-vk/shlpt-vk/shlpt/run"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// barReporter shows one progress bar per epoch on a terminal: step,
// running loss, tokens/s and the time left in the epoch; a line per
// finished epoch and per message stays above it.
type barReporter struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	head string
}

func (r *barReporter) BeginEpoch(task string, i, n, epoch, epochs, steps int) {
	r.clear()
	r.head = fmt.Sprintf("task %d/%d %s epoch %d/%d", i+1, n, task, epoch+1, epochs)
	r.bar = progressbar.NewOptions(steps,
		progressbar.OptionSetWriter(r.w),
		progressbar.OptionSetDescription(r.head),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (r *barReporter) Step(step int, loss, tokensPerS float64) {
	if r.bar == nil {
		return
	}
	r.bar.Describe(fmt.Sprintf("%s loss %.4f %.0f tok/s", r.head, loss, tokensPerS))
	r.bar.Set(step)
}

func (r *barReporter) EndEpoch(l rundir.EpochLine) {
	r.clear()
	fmt.Fprintln(r.w, run.FormatEpoch(l))
}

func (r *barReporter) Logf(format string, args ...any) {
	if r.bar != nil {
		r.bar.Clear()
	}
	fmt.Fprintf(r.w, format+"\n", args...)
}

func (r *barReporter) clear() {
	if r.bar != nil {
		r.bar.Clear()
		r.bar = nil
	}
}

func (r *barReporter) Close() { r.clear() }
