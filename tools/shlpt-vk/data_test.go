package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// runCLI runs shlpt-vk with args and returns the exit code and outputs.
func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := dispatch(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDataTasks(t *testing.T) {
	code, out, _ := runCLI("data", "tasks")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{
		"ag (ag_news, agnews)", "dbpedia (dbpedia_14)", "squad (squad_v2, squad2)",
		"CB/train.jsonl, CB/test.jsonl (superglue-jsonl)",
		`"premise: {premise} hypothesis: {hypothesis} "`,
		"labels:  entailment, not_entailment",
		"society and culture, science, health",
		"order4", "long_seq1", "nt3", "dis_seq3", "multirc rte squad wic mnli",
		"olora-json", "lfpt5-txt",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

// statsJSON runs data stats --json and decodes its single JSON object.
func statsJSON(t *testing.T, args ...string) map[string]map[string]int {
	t.Helper()
	code, out, errs := runCLI(append([]string{"data", "stats", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var got map[string]map[string]int
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if dec.More() || strings.Count(out, "\n") != 1 {
		t.Fatalf("output is not exactly one JSON object: %q", out)
	}
	return got
}

func TestDataStatsJSON(t *testing.T) {
	root := testenv.Data(t)
	shlpt := filepath.Join(root, "shlpt")
	dev := filepath.Join(root, "squad_v2/dev-v2.0.json")
	for _, tc := range []struct {
		name string
		args []string
		want map[string]map[string]int
	}{
		{"cb", []string{"--data", shlpt, "--task", "cb", "--seed", "42"}, map[string]map[string]int{
			"train": {"entailment": 57, "contradiction": 59, "neutral": 8},
			"valid": {"entailment": 58, "contradiction": 60, "neutral": 8},
			"test":  {"entailment": 23, "contradiction": 28, "neutral": 5},
		}},
		{"rte", []string{"--data", shlpt, "--task", "RTE", "--seed", "142"}, map[string]map[string]int{
			"train": {"entailment": 75, "not_entailment": 75},
			"valid": {"entailment": 75, "not_entailment": 75},
			"test":  {"entailment": 100, "not_entailment": 100},
		}},
		{"copa small k", []string{"--data", shlpt, "--task", "copa", "--k-train", "8", "--k-val", "8", "--k-test", "-1"}, map[string]map[string]int{
			"train": {"false": 8, "true": 8},
			"valid": {"false": 8, "true": 8},
			"test":  {"false": 55, "true": 45},
		}},
		{"olora mnli", []string{"--task", "mnli", "--format", "olora-json", "--train", filepath.Join(root, "olora/MNLI/train.json"), "--test", filepath.Join(root, "olora/MNLI/test.json")}, map[string]map[string]int{
			"train": {"entailment": 75, "neutral": 75, "contradiction": 75},
			"valid": {"entailment": 75, "neutral": 75, "contradiction": 75},
			"test":  {"entailment": 100, "neutral": 100, "contradiction": 100},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statsJSON(t, tc.args...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	got := statsJSON(t, "--task", "squad", "--format", "squad-json", "--train", dev, "--test", dev)
	for split, n := range map[string]int{"train": 300, "valid": 300, "test": 400} {
		if got[split]["answerable"]+got[split]["unanswerable"] != n {
			t.Errorf("squad %s: %v, want %d questions", split, got[split], n)
		}
	}
}

func TestDataStatsText(t *testing.T) {
	root := testenv.Data(t)
	code, out, errs := runCLI("data", "stats", "--data", filepath.Join(root, "shlpt"), "--task", "rte")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, s := range []string{"task rte, seed 42", "RTE/train.tsv: 2490 rows, 2490 examples", "RTE/test.tsv: 277 rows", "not_entailment", "total"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

// Yahoo without the reference's row filter says so.
func TestDataStatsNote(t *testing.T) {
	root := testenv.Data(t)
	dir := filepath.Join(root, "lfpt5/yahoo_answers_csv/0_42")
	code, out, errs := runCLI("data", "stats", "--task", "yahoo", "--format", "lfpt5-txt",
		"--train", filepath.Join(dir, "train.txt"), "--valid", filepath.Join(dir, "valid.txt"), "--test", filepath.Join(dir, "test.txt"))
	if code != 0 || !strings.Contains(out, "note: yahoo: rows are not filtered by good_id_yahoo") || !strings.Contains(out, "\ntotal ") ||
		strings.Join(strings.Fields(out[strings.LastIndex(out, "\ntotal "):]), " ") != "total 160 160 1000" {
		t.Errorf("exit %d, stdout %s, stderr %s", code, out, errs)
	}
}

// A malformed row fails with its file and line; --skip-malformed counts it.
func TestDataSkipMalformed(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 6; i++ {
		b.WriteString(`{"premise": "p", "hypothesis": "h", "label": "` + []string{"entailment", "contradiction", "neutral"}[i%3] + `"}` + "\n")
	}
	b.WriteString(`{"premise": "p", "label": "neutral"}` + "\n")
	train := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(train, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI("data", "stats", "--task", "cb", "--train", train, "--test", train)
	if code != 1 || !strings.Contains(errs, train+":7: missing field \"hypothesis\"") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	code, out, errs := runCLI("data", "stats", "--task", "cb", "--train", train, "--test", train, "--skip-malformed")
	if code != 0 || !strings.Contains(out, "1 malformed rows skipped") || !strings.Contains(out, "skipped "+train+":7:") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

func TestDataShow(t *testing.T) {
	root := testenv.Data(t)
	code, out, errs := runCLI("data", "show", "--data", filepath.Join(root, "shlpt"), "--task", "copa", "-n", "2", "--split", "valid")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(out, "\ninput:  \"choice1: ") != 2 || strings.Count(out, "\ntarget: ") != 2 || !strings.Contains(out, "valid: 150 examples") {
		t.Errorf("output:\n%s", out)
	}
}

func TestDataShowTokenizer(t *testing.T) {
	root := testenv.Data(t)
	tok := testenv.Tokenizer(t)
	dev := filepath.Join(root, "squad_v2/dev-v2.0.json")
	code, out, errs := runCLI("data", "show", "--task", "squad", "--format", "squad-json", "--train", dev, "--test", dev,
		"--tokenizer", tok, "-n", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, " of 300 inputs truncated to 256 (longest ") || !strings.Contains(out, "\ntokens: input ") {
		t.Errorf("output:\n%s", out)
	}
	code, _, errs = runCLI("data", "show", "--task", "cb", "--data", root, "--tokenizer", t.TempDir())
	if code != 1 || !strings.Contains(errs, "--tokenizer") {
		t.Errorf("missing tokenizer: exit %d, %s", code, errs)
	}
}

func TestDataErrors(t *testing.T) {
	root := testenv.Data(t)
	for _, tc := range []struct {
		args []string
		code int
		has  string
	}{
		{[]string{"data"}, 2, ""},
		{[]string{"data", "frob"}, 2, ""},
		{[]string{"data", "stats", "--data", root, "--task", "cola"}, 1, `unknown task "cola"`},
		{[]string{"data", "stats", "--task", "cb"}, 1, "give --data DIR"},
		{[]string{"data", "stats", "--data", root}, 1, "--task is required"},
		{[]string{"data", "stats", "--data", root, "--task", "cb"}, 1, "try " + filepath.Join(root, "shlpt")},
		{[]string{"data", "stats", "--data", root, "--task", "cb", "--format", "xml"}, 1, `unknown format "xml"`},
		{[]string{"data", "show", "--data", filepath.Join(root, "shlpt"), "--task", "cb", "--split", "dev"}, 1, "expected train, valid or test"},
		{[]string{"data", "stats", "--bogus"}, 2, ""},
	} {
		code, _, errs := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.has) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.has)
		}
	}
}

// data stats and show read a custom task folder as train does.
func TestDataCustomTask(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "colors")
	os.MkdirAll(dir, 0o755)
	var exs []tasks.Example
	for i := 0; i < 12; i++ {
		exs = append(exs, tasks.Example{Input: "word " + []string{"red", "blue"}[i%2], Target: []string{"warm", "cold"}[i%2]})
	}
	for _, f := range []string{"train.txt", "test.txt"} {
		if err := tasks.WriteLFPT5(filepath.Join(dir, f), exs); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, tasks.TaskFile), []byte(`{"name": "colors", "labels": ["warm", "cold"], "train": "train.txt", "test": "test.txt"}`), 0o644)
	code, out, errs := runCLI("data", "stats", "--data", root, "--task", "colors", "--k-train", "2", "--k-val", "1", "--k-test", "3", "--json")
	if code != 0 || !strings.Contains(out, `"test":{"cold":3,"warm":3}`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, out, errs := runCLI("data", "show", "--data", root, "--task", "colors", "--split", "test", "-n", "1"); code != 0 || !strings.Contains(out, "word") {
		t.Errorf("show: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
