package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// runDeviceCLI runs shlpt-vk; a missing Vulkan device is reported through testenv.
func runDeviceCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(args, &out, &errb)
	if strings.Contains(errb.String(), "no Vulkan device") {
		testenv.Missing(t, errb.String())
	}
	return out.String(), errb.String(), code
}

func TestDevicesJSON(t *testing.T) {
	out, errs, code := runDeviceCLI(t, "devices", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	chosen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var d struct {
			Name         string `json:"name"`
			SubgroupSize int    `json:"subgroup_size"`
			StorageRange int64  `json:"max_storage_buffer_range"`
			Chosen       bool   `json:"chosen"`
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if d.Name == "" || d.SubgroupSize == 0 || d.StorageRange == 0 {
			t.Errorf("incomplete device: %s", sc.Text())
		}
		if d.Chosen {
			chosen++
		}
	}
	if chosen != 1 {
		t.Errorf("%d devices chosen", chosen)
	}
	text, _, code := runDeviceCLI(t, "devices")
	if code != 0 || !strings.Contains(text, "[chosen]") || !strings.Contains(text, "subgroup size") {
		t.Errorf("text output:\n%s", text)
	}
	if _, errs, code := runDeviceCLI(t, "devices", "--device", "no-such-device"); code == 0 || !strings.Contains(errs, "no device matches") {
		t.Errorf("unknown device: exit %d, %s", code, errs)
	}
}

func TestBenchJSON(t *testing.T) {
	out, errs, code := runDeviceCLI(t, "bench", "--op", "copy", "--shape", "1000", "--runs", "2", "--copy-mib", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got %q", out)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"op", "shape", "median_us", "gbps"} {
		if _, ok := r[k]; !ok {
			t.Errorf("missing %q in %s", k, lines[0])
		}
	}
	if _, errs, code := runDeviceCLI(t, "bench", "--op", "nope"); code == 0 || !strings.Contains(errs, "unknown op") {
		t.Errorf("unknown op: exit %d, %s", code, errs)
	}
}
