// Package atomicfile writes files so that a reader, or a program resumed
// after a crash, sees the old content or the new, never a part.
//
// Every durable write of a run directory goes through this package
// (WriteFile, Append, Rename), which makes it the one place to inject
// faults in tests: SHLPT_VK_FAULT_KILL_AT=k kills the process with SIGKILL
// in the middle of the k-th durable write (after the new bytes are written
// and before they are committed), and SHLPT_VK_FAULT_WRITE_BUDGET=n makes
// writes fail as on a full disk once n bytes have been written.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tempMarker is in the name of every temporary file WriteFile creates:
// ".<name>.tmp-<random>".
const tempMarker = ".tmp-"

// IsTemp reports whether a file name is that of a temporary file an
// interrupted WriteFile left behind.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempMarker)
}

// WriteFile writes data to path through a temporary file in the same
// folder, synced and renamed over path; the folder is synced too, so the
// rename survives a crash. The file gets mode 0644.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMarker+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o644) // CreateTemp makes files only the owner may read
	if err == nil {
		err = faults.write(f, data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		faults.commit()
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// Append appends data to the file at path (created with mode 0644 when
// absent) and syncs it. A crash can leave a part of data at the end; a
// reader that knows the file's committed length (a checkpoint) cuts it
// off.
func Append(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	half := len(data) / 2
	err = faults.write(f, data[:half])
	if err == nil {
		faults.commit() // a crash here leaves half a line
		err = faults.write(f, data[half:])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("appending to %s: %w", path, err)
	}
	return nil
}

// Rename renames oldpath to newpath and syncs the folder of newpath, so
// that the rename survives a crash.
func Rename(oldpath, newpath string) error {
	faults.commit()
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	syncDir(filepath.Dir(newpath))
	return nil
}

// syncDir makes a folder's entries durable (best effort: not every file
// system can sync a folder).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
