//go:build !linux

package sweep

import "syscall"

// childAttr puts a child in its own process group, so that a terminal's
// Ctrl-C reaches only the executor, which forwards it once.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
