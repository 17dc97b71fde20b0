package run

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// Internal files of a run directory.
const (
	scratchDir = rundir.ScratchDir
	lockFile   = rundir.LockFile
)

// WriteFileAtomic writes data to path atomically (see atomicfile).
func WriteFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data) }

// marshalJSON is the JSON of every file the runner writes: indented, with
// a final newline.
func marshalJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// encodeTensors returns host tensors as a safetensors file.
func encodeTensors(ts []method.HostTensor, meta map[string]string) ([]byte, error) {
	st := make([]safetensors.Tensor, len(ts))
	for i, t := range ts {
		st[i] = safetensors.FromFloat32(t.Name, t.Shape, t.Data)
	}
	var buf bytes.Buffer
	if err := safetensors.Encode(&buf, st, meta); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dirStore writes method artifacts into the run directory.
type dirStore struct{ dir string }

func (s dirStore) path(rel string) (string, error) {
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, nil
}

func (s dirStore) WriteTensors(rel string, ts []method.HostTensor, meta map[string]string) error {
	b, err := encodeTensors(ts, meta)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	p, err := s.path(rel)
	if err != nil {
		return err
	}
	return WriteFileAtomic(p, b)
}

func (s dirStore) WriteJSON(rel string, v any) error {
	b, err := marshalJSON(v)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	p, err := s.path(rel)
	if err != nil {
		return err
	}
	return WriteFileAtomic(p, b)
}

// lockDir takes an exclusive lock on the run directory so that two
// processes never write one run; the lock ends with the process.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run directory %s is in use by another shlpt-vk process", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f, nil
}

// emptyOrAbsent reports whether dir does not exist or holds nothing.
func emptyOrAbsent(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(entries) == 0, nil
}
