package jsonfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	type rec struct {
		A int `json:"a"`
	}
	for _, tc := range []struct {
		content, want string
	}{
		{`{"a": 3}`, ""},
		{`{"a": 3, "b": 1}`, `unknown field "b"`},
		{`{"a": 3} {"a": 4}`, "more than one JSON value"},
		{`{"a": `, "unexpected EOF"},
	} {
		p := filepath.Join(dir, "x.json")
		os.WriteFile(p, []byte(tc.content), 0o644)
		var r rec
		err := Read(p, 1<<10, "a test file", &r)
		if tc.want == "" {
			if err != nil || r.A != 3 {
				t.Errorf("%s: %+v, %v", tc.content, r, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s and %q", tc.content, err, p, tc.want)
		}
	}
	var r rec
	if err := Read(filepath.Join(dir, "missing.json"), 1<<10, "a test file", &r); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}
