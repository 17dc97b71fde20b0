package atomicfile

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Environment variables of the fault injection (tests only).
const (
	// KillAtEnv makes the process SIGKILL itself in the k-th durable write.
	KillAtEnv = "SHLPT_VK_FAULT_KILL_AT"
	// WriteBudgetEnv makes writes fail with ENOSPC past this many bytes.
	WriteBudgetEnv = "SHLPT_VK_FAULT_WRITE_BUDGET"
)

// faultState counts durable writes and written bytes for the injected
// faults; with neither variable set it does nothing.
type faultState struct {
	once    sync.Once
	mu      sync.Mutex
	killAt  int64 // 0: never
	budget  int64 // < 0: unlimited
	commits int64
	written int64
}

var faults faultState

func (s *faultState) init() {
	s.once.Do(func() {
		s.budget = -1
		if v := os.Getenv(KillAtEnv); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "shlpt-vk: ignoring %s=%q: want a positive count\n", KillAtEnv, v)
			} else {
				s.killAt = n
			}
		}
		if v := os.Getenv(WriteBudgetEnv); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				fmt.Fprintf(os.Stderr, "shlpt-vk: ignoring %s=%q: want a byte count\n", WriteBudgetEnv, v)
			} else {
				s.budget = n
			}
		}
	})
}

// write writes data to f within the write budget: past it, only the bytes
// that fit are written and the error is ENOSPC, as on a full disk.
func (s *faultState) write(f *os.File, data []byte) error {
	s.init()
	s.mu.Lock()
	n := int64(len(data))
	var full bool
	if s.budget >= 0 && s.written+n > s.budget {
		n, full = max(0, s.budget-s.written), true
	}
	s.written += n
	s.mu.Unlock()
	if _, err := f.Write(data[:n]); err != nil {
		return err
	}
	if full {
		return &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return nil
}

// commit is called just before a durable write becomes visible: the k-th
// call kills the process when KillAtEnv is k.
func (s *faultState) commit() {
	s.init()
	s.mu.Lock()
	s.commits++
	kill := s.killAt > 0 && s.commits == s.killAt
	s.mu.Unlock()
	if kill {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal arrives
	}
}
