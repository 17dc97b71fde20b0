//go:build unix

package safetensors

import (
	"syscall"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// mapFile maps the file at path read-only. It falls back to reading the file
// when mapping fails (for example on a file system without mmap support).
// The returned function unmaps; it is nil for a file read into memory.
func mapFile(path string) ([]byte, func() error, error) {
	// A folder, device or named pipe is refused before it is opened.
	f, st, err := limitio.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	size := st.Size()
	if size == 0 || int64(int(size)) != size {
		// Nothing to map (Parse reports the empty file), or too large to map
		// on this platform (reading then fails the same way).
		return readWhole(path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return readWhole(path)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
