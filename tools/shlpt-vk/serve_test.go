package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// eval, export, import and serve from the command line on a small run:
// eval writes eval/<name>.json beside the run's files, the exported
// adapters imported back score the same, and serve answers until SIGTERM,
// finishing the request in flight.
func TestEvalExportImportServeCLI(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "run")
	trainCLI(t, "train", "--model", "../../testdata/t5-tiny-fullvocab", "--tokenizer", testenv.Tokenizer(t),
		"--data", filepath.Join(testenv.Data(t), "shlpt"), "--tasks", "cb,sst2", "--k-train", "4", "--k-val", "2", "--k-test", "4",
		"--epochs", "1", "--eval-from", "0", "--prompt-len", "4", "--max-input-len", "37", "--decode", "rank", "--quiet", "--out", dir)

	out, _ := trainCLI(t, "eval", dir, "--quiet")
	if !strings.Contains(out, "test scores of shlpt (rank decoding)") || !strings.Contains(out, "eval/test-rank.json") {
		t.Errorf("eval printed:\n%s", out)
	}
	own, err := rundir.ReadEval(dir, "test-rank")
	if err != nil {
		t.Fatal(err)
	}

	adapters := filepath.Join(base, "adapters")
	out, _ = trainCLI(t, "export", dir, "--format", "peft", "--out", adapters)
	if strings.Count(out, "\n") != 2 {
		t.Errorf("export printed:\n%s", out)
	}
	imported := filepath.Join(base, "imported")
	trainCLI(t, "import", filepath.Join(adapters, "cb"), filepath.Join(adapters, "sst2"), "--out", imported)
	out, _ = trainCLI(t, "eval", dir, "--prompts", imported, "--name", "imported", "--json", "--quiet")
	var with rundir.Results
	if err := json.Unmarshal([]byte(out), &with); err != nil {
		t.Fatalf("eval --json: %v\n%s", err, out)
	}
	a, _ := json.Marshal(own.Matrix)
	b, _ := json.Marshal(with.Matrix)
	if !bytes.Equal(a, b) {
		t.Errorf("with the imported prompts %s, with the run's %s", b, a)
	}

	// serve as a real process, stopped by SIGTERM while a request waits.
	cmd := exec.Command(os.Args[0], "serve", dir, imported+"-none-such", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "is not a run directory") {
		t.Errorf("serve of a missing folder: %v\n%s", err, b)
	}
	cmd = exec.Command(os.Args[0], "serve", dir, "--addr", "127.0.0.1:0", "--batch-window", "400ms")
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on http://") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("serve printed %q (%v)\n%s", line, err, errb.String())
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Post(url+"/v1/classify", "application/json", strings.NewReader(`{"model": "sst2", "input": "a fine film"}`))
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- resp.Status + " " + string(b)
	}()
	// SIGTERM once the input waits in the queue (400 ms, for company), or
	// has been computed already.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := string(b); !strings.Contains(m, "\nshlpt_queue_depth 0\n") || !strings.Contains(m, "\nshlpt_rows_total 0\n") {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	got := <-answer
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v\n%s", err, errb.String())
	}
	if !strings.HasPrefix(got, "200 OK") || !strings.Contains(got, `"label"`) {
		t.Errorf("the request in flight at SIGTERM got %s", got)
	}
	if !strings.Contains(errb.String(), "shutting down") {
		t.Errorf("serve's log:\n%s", errb.String())
	}
}
