package rundir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metrics.jsonl is read line by line; a line that does not parse is
// named by its number.
func TestReadMetrics(t *testing.T) {
	dir := t.TempDir()
	good := `{"task":"cb","task_index":0,"epoch":0,"steps":3,"loss":1.5,"parts":{"ce":1.5},"valid":null,"best":null,"tokens_per_s":10,"train_seconds":1,"eval_seconds":0,"peak_device_bytes":5}`
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, MetricsFile), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(good + "\n" + strings.Replace(good, `"epoch":0`, `"epoch":1`, 1) + "\n")
	lines, err := ReadMetrics(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[1].Epoch != 1 || lines[0].Parts["ce"] != 1.5 {
		t.Fatalf("read %+v", lines)
	}
	write(good + "\n" + `{"task":"cb","epoch":` + "\n")
	if _, err := ReadMetrics(dir); err == nil || !strings.Contains(err.Error(), "metrics.jsonl:2") {
		t.Fatalf("a broken second line gave %v", err)
	}
	write(good + "\n" + `{"task":"cb","surprise":1}` + "\n")
	if _, err := ReadMetrics(dir); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Fatalf("an unknown field gave %v", err)
	}
}

// A folder without config.json is not a run directory, and the message
// says so.
func TestReadInfoNotARun(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadInfo(dir); err == nil || !strings.Contains(err.Error(), "not a run directory") {
		t.Fatalf("got %v", err)
	}
}

// Whatever bytes a run directory's files hold, reading them is an error or
// a value, never a panic.
func FuzzDecodeRunFiles(f *testing.F) {
	f.Add([]byte(`{"settings":{"method":"shlpt","tasks":["cb"]},"model_sha256":"x","data_sha256":{},"device":"d","driver":"d","version":"v","created":"c"}`))
	f.Add([]byte(`{"method":"shlpt","tasks":["cb"],"metric":["accuracy"],"complete":true,"stages_done":1,"matrix":{"valid":[[50]],"test":[[50]]},"per_task":[],"timing":{}}`))
	f.Add([]byte(`{"task":"cb","task_index":0,"epoch":0,"steps":1,"loss":1,"parts":{},"valid":null,"best":null,"tokens_per_s":1,"train_seconds":1,"eval_seconds":0,"peak_device_bytes":1}` + "\n{\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		DecodeInfo("config.json", data)
		DecodeResults("results.json", data)
		DecodeMetrics("metrics.jsonl", data)
	})
}
