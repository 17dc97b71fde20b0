package sweep

import "syscall"

// childAttr puts a child in its own process group, so that a terminal's
// Ctrl-C reaches only the executor (which forwards it once), and kills it
// when the executor dies, so that no run outlives the executor that
// started it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
