package sweep

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Local executes a plan on this machine, Jobs runs at a time, each in its
// own process (`shlpt-vk sweep exec PLAN --index I`, the command the
// schedulers run). A complete run is skipped, an interrupted one resumed.
// The first signal on Interrupt is forwarded to every child as SIGTERM
// (which no shell leaves ignored, unlike SIGINT in background jobs): the
// child stops at its next step after a checkpoint, and no run starts after
// it. A second is forwarded again (a child then ends at once).
type Local struct {
	Plan *Plan
	// Exe and Args give the child process of run i.
	Exe  string
	Args func(i int) []string
	Env  []string // nil: this process's environment
	Jobs int
	// Out gets one line per run as it starts and ends.
	Out       io.Writer
	Interrupt <-chan os.Signal
	// Poll is how often a run that another process holds is checked
	// again (default 1 s).
	Poll time.Duration
}

// Summary counts how a plan's runs stand after an execution.
type Summary struct {
	Total, Complete, Failed, Stopped, Elsewhere int
	Interrupted                                 bool
}

type childEnd struct {
	i       int
	elapsed time.Duration
	err     error
	last    string
}

// Run executes the plan. The plan's lock is held throughout: a second
// executor on the same plan is refused.
func (l *Local) Run() (Summary, error) {
	p := l.Plan
	if l.Jobs < 1 {
		return Summary{}, fmt.Errorf("--jobs %d: must be at least 1", l.Jobs)
	}
	lock, err := p.Lock()
	if err != nil {
		return Summary{}, err
	}
	defer lock.Close()
	if l.Poll == 0 {
		l.Poll = time.Second
	}
	if err := os.MkdirAll(filepath.Join(p.Dir, LogsDir), 0o755); err != nil {
		return Summary{}, err
	}
	sum := Summary{Total: len(p.Runs)}
	var queue []int
	resuming := 0
	for i := range p.Runs {
		switch p.Status(i).State {
		case Complete:
			sum.Complete++
		case Interrupted:
			resuming++
			queue = append(queue, i)
		default:
			queue = append(queue, i)
		}
	}
	todo := len(queue)
	fmt.Fprintf(l.Out, "plan %s: %d runs, %d complete, %d to run (%d to resume), %d at a time\n",
		p.Spec.Name, len(p.Runs), sum.Complete, todo, resuming, l.Jobs)

	var (
		mu       sync.Mutex
		children = map[int]*exec.Cmd{}
		ends     = make(chan childEnd)
		started  = 0
		running  = 0 // children started and not yet ended
		finished = 0
		stopping = false
		spent    time.Duration // of the runs that completed in this execution
		ran      = 0
		waitMsg  = map[int]bool{}
		deferred []int
	)
	forward := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range children {
			c.Process.Signal(syscall.SIGTERM)
		}
	}
	start := func(i int, prog *Progress) error {
		log, err := os.OpenFile(filepath.Join(p.Dir, LogsDir, p.Runs[i].ID+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		args := l.Args(i)
		fmt.Fprintf(log, "== %s: %s %s\n", time.Now().Format(time.RFC3339), l.Exe, ShellJoin(args))
		last := &lastLine{}
		cmd := exec.Command(l.Exe, args...)
		cmd.Env = l.Env
		cmd.Stdout = log
		cmd.Stderr = io.MultiWriter(log, last)
		cmd.SysProcAttr = childAttr()
		mu.Lock()
		err = cmd.Start()
		if err == nil {
			children[i] = cmd
		}
		mu.Unlock()
		if err != nil {
			log.Close()
			return fmt.Errorf("starting run %d (%s): %w", i, p.Runs[i].Dir, err)
		}
		started++
		what := "new"
		if prog != nil {
			what = "resuming"
			if prog.Epoch > 0 {
				what = fmt.Sprintf("resuming at task %d/%d, after epoch %d", prog.TaskIndex+1, prog.Tasks, prog.Epoch)
			}
		}
		fmt.Fprintf(l.Out, "[%d/%d] start %s (%s)\n", started, todo, p.Runs[i].Dir, what)
		t0 := time.Now()
		go func() {
			err := cmd.Wait()
			log.Close()
			mu.Lock()
			delete(children, i)
			mu.Unlock()
			ends <- childEnd{i: i, elapsed: time.Since(t0), err: err, last: last.String()}
		}()
		return nil
	}
	var startErr error
	for {
		// Start runs while there are slots.
		for !stopping && startErr == nil && running < l.Jobs && len(queue) > 0 {
			i := queue[0]
			queue = queue[1:]
			st := p.Status(i)
			if st.State == Complete {
				finished++
				sum.Complete++
				continue
			} else if st.State == Running {
				deferred = append(deferred, i)
				continue
			}
			if startErr = start(i, st.Progress); startErr == nil {
				running++
			}
		}
		if running == 0 && (stopping || startErr != nil || (len(queue) == 0 && len(deferred) == 0)) {
			break
		}
		var tick <-chan time.Time
		if running == 0 || (len(deferred) > 0 && len(queue) == 0) {
			// Runs held by other processes: look again later.
			for _, i := range deferred {
				if !waitMsg[i] {
					waitMsg[i] = true
					fmt.Fprintf(l.Out, "waiting for %s: another process is running it\n", p.Runs[i].Dir)
				}
			}
			tick = time.After(l.Poll)
		}
		select {
		case <-l.Interrupt:
			sum.Interrupted = true
			if !stopping {
				stopping = true
				fmt.Fprintf(l.Out, "stopping: every run stops at its next step after a checkpoint (interrupt again to stop them at once)\n")
			}
			forward()
		case e := <-ends:
			running--
			finished++
			st := p.Status(e.i)
			dir := p.Runs[e.i].Dir
			switch {
			case st.State == Complete:
				sum.Complete++
				ran++
				spent += e.elapsed
				left := todo - finished
				eta := "no runs left"
				if left > 0 {
					per := spent / time.Duration(ran)
					eta = fmt.Sprintf("%d left, ETA %s", left, round(per*time.Duration(left)/time.Duration(min(l.Jobs, left))))
				}
				fmt.Fprintf(l.Out, "[%d/%d] done %s in %s; %s\n", finished, todo, dir, round(e.elapsed), eta)
			case st.State == Running:
				// Another process took the run between the check and the
				// start (exec refused it): wait for that one.
				finished--
				started--
				deferred = append(deferred, e.i)
			case stopping || isStopped(e.err):
				sum.Stopped++
				fmt.Fprintf(l.Out, "[%d/%d] stopped %s after %s: it resumes on the next 'sweep run'\n", finished, todo, dir, round(e.elapsed))
			default:
				sum.Failed++
				msg := st.Error
				if msg == "" {
					// The child could not record its failure (it crashed).
					msg = e.last
					if msg == "" && e.err != nil {
						msg = e.err.Error()
					}
					p.RecordFailure(e.i, msg, exitCode(e.err))
				}
				fmt.Fprintf(l.Out, "[%d/%d] failed %s after %s: %s\n", finished, todo, dir, round(e.elapsed), msg)
			}
		case <-tick:
			var still []int
			for _, i := range deferred {
				if p.Status(i).State == Running {
					still = append(still, i)
				} else {
					queue = append(queue, i)
				}
			}
			deferred = still
		}
	}
	sum.Elsewhere = len(deferred)
	fmt.Fprintf(l.Out, "plan %s: %d of %d runs complete", p.Spec.Name, sum.Complete, sum.Total)
	if sum.Failed > 0 {
		fmt.Fprintf(l.Out, ", %d failed", sum.Failed)
	}
	if sum.Stopped > 0 {
		fmt.Fprintf(l.Out, ", %d stopped at a checkpoint", sum.Stopped)
	}
	if sum.Elsewhere > 0 {
		fmt.Fprintf(l.Out, ", %d running in other processes", sum.Elsewhere)
	}
	fmt.Fprintln(l.Out)
	switch {
	case startErr != nil:
		return sum, startErr
	case sum.Interrupted:
		return sum, fmt.Errorf("interrupted: run 'shlpt-vk sweep run %s' again to resume", p.Dir)
	case sum.Complete < sum.Total:
		return sum, fmt.Errorf("%d of %d runs are not complete (see 'shlpt-vk sweep status %s')", sum.Total-sum.Complete, sum.Total, p.Dir)
	}
	return sum, nil
}

// isStopped reports whether a child exited as a run stopped by a signal.
func isStopped(err error) bool {
	return exitCode(err) == ExitStopped
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// lastLine keeps the last non-empty line written to it.
type lastLine struct {
	mu      sync.Mutex
	partial []byte
	last    string
}

func (w *lastLine) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexAny(w.partial, "\r\n")
		if i < 0 {
			break
		}
		if s := strings.TrimSpace(string(w.partial[:i])); s != "" {
			w.last = s
		}
		w.partial = w.partial[i+1:]
	}
	if len(w.partial) > 4096 {
		w.partial = w.partial[len(w.partial)-4096:]
	}
	return len(b), nil
}

func (w *lastLine) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := strings.TrimSpace(string(w.partial)); s != "" {
		return s
	}
	return w.last
}
