//go:build unix

package limitio

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// TestNamedPipe: a named pipe is refused without blocking on open.
func TestNamedPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		testenv.Missing(t, "cannot make a named pipe: "+err.Error())
	}
	var nr *NotRegularError
	if _, err := ReadFile(fifo, 10, "x"); !errors.As(err, &nr) || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("fifo: %v", err)
	}
}
