// Package jsonfile reads the JSON files shlpt-vk writes and reads back
// (run configurations, plans, task definitions, cards) strictly: one
// value, no unknown field, a bounded size, and errors that name the file.
package jsonfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// Decode decodes exactly one JSON value of b into v, refusing unknown
// fields and anything after the value.
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// Read reads the file at path (at most max bytes; what names the kind of
// file in the size error) and decodes it with Decode. A missing file's
// error wraps os.ErrNotExist; a bad one names the file.
func Read(path string, max int64, what string, v any) error {
	b, err := limitio.ReadFile(path, max, what)
	if err != nil {
		return err
	}
	if err := Decode(b, v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}
