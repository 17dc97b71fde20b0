package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

func init() {
	register(command{name: "data", summary: "list tasks; count and show their few-shot examples", run: runData})
}

const dataUsage = `usage: shlpt-vk data <subcommand> [flags]

subcommands:
  tasks   list tasks, their files, formats, templates and label words
  stats   per-split, per-label example counts after sampling
  show    print formatted examples (input text, target text)

Run 'shlpt-vk data <subcommand> --help' for its flags.
`

// runData dispatches the data subcommands.
func runData(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, dataUsage)
		return errUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dataUsage)
		return errHelp
	case "tasks":
		return dataTasks(args[1:], stdout)
	case "stats":
		return dataStats(args[1:], stdout)
	case "show":
		return dataShow(args[1:], stdout)
	}
	fmt.Fprintf(os.Stderr, "shlpt-vk data: unknown subcommand %q\n\n%s", args[0], dataUsage)
	return errUsage
}

func dataTasks(args []string, stdout io.Writer) error {
	fs := newFlags("data tasks", "data tasks")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	for _, t := range tasks.All() {
		l := tasks.Layout("", t)
		fmt.Fprintf(stdout, "%s", t.Name)
		if len(t.Aliases) > 0 {
			fmt.Fprintf(stdout, " (%s)", strings.Join(t.Aliases, ", "))
		}
		fmt.Fprintf(stdout, "\n  files:   %s, %s (%s)\n", l.Train, l.Test, t.Format)
		fmt.Fprintf(stdout, "  input:   %q\n", t.Template())
		if t.QA {
			fmt.Fprintf(stdout, "  target:  the first gold answer, \"\" if unanswerable; at most %d tokens\n", t.TargetLen)
		} else {
			fmt.Fprintf(stdout, "  labels:  %s\n  target:  at most %d tokens\n", strings.Join(t.Labels, ", "), t.TargetLen)
		}
	}
	fmt.Fprintf(stdout, "\nformats: ")
	for i, f := range tasks.Formats() {
		if i > 0 {
			fmt.Fprint(stdout, ", ")
		}
		fmt.Fprint(stdout, f)
	}
	fmt.Fprintf(stdout, "\n\nsequences:\n")
	for _, s := range tasks.Sequences() {
		fmt.Fprintf(stdout, "  %-7s %-10s %-28s %s\n", s.Name, s.Reference, s.Benchmark, strings.Join(s.Tasks, " "))
	}
	return nil
}

// dataFlags are the flags stats and show share.
type dataFlags struct {
	data, task, format       string
	train, valid, test       string
	trainRows, testRows      string
	seed                     uint64
	kTrain, kVal, kTest      int
	skipMalformed, accumRefs bool
}

func addDataFlags(fs *pflag.FlagSet) *dataFlags {
	d := &dataFlags{}
	def := tasks.DefaultConfig()
	fs.StringVar(&d.data, "data", "", "dataset root in the SHLPT layout (CB/train.jsonl, RTE/train.tsv, ...)")
	fs.StringVar(&d.task, "task", "", "task name or alias (see 'shlpt-vk data tasks'), or a custom task folder under --data")
	fs.Uint64Var(&d.seed, "seed", 42, "sampling seed")
	fs.StringVar(&d.format, "format", "", "format of --train/--valid/--test (default: the task's SHLPT format)")
	fs.StringVar(&d.train, "train", "", "train file (default: from --data)")
	fs.StringVar(&d.valid, "valid", "", "valid file; without it valid examples come from the train file")
	fs.StringVar(&d.test, "test", "", "test file (default: from --data)")
	fs.StringVar(&d.trainRows, "train-rows", "", "NumPy .npy file of train-file rows to use (default for yahoo: <data>/good_id_yahoo/good_id_yahoo_train2.npy if present)")
	fs.StringVar(&d.testRows, "test-rows", "", "NumPy .npy file of test-file rows to use (default for yahoo: <data>/good_id_yahoo/good_id_yahoo_test2.npy if present)")
	fs.IntVar(&d.kTrain, "k-train", def.KTrain, "train examples per class (-1: all)")
	fs.IntVar(&d.kVal, "k-val", def.KVal, "valid examples per class (-1: all)")
	fs.IntVar(&d.kTest, "k-test", def.KTest, "test examples per class (-1: all)")
	fs.BoolVar(&d.skipMalformed, "skip-malformed", false, "skip malformed rows and count them, instead of failing")
	fs.BoolVar(&d.accumRefs, "multirc-accumulate", false, "reference behaviour: each MultiRC input repeats its passage's earlier blocks")
	return d
}

// load resolves the task and its files and draws the examples.
func (d *dataFlags) load() (*tasks.Data, error) {
	if d.task == "" {
		return nil, errors.New("--task is required (see 'shlpt-vk data tasks')")
	}
	var t *tasks.Task
	var files tasks.Files
	var err error
	if d.data != "" {
		// A built-in task in the SHLPT layout, or a custom task folder,
		// as train resolves them.
		if t, files, err = tasks.Resolve(d.data, d.task); err != nil {
			return nil, err
		}
	} else {
		if t, err = tasks.Lookup(d.task); err != nil {
			return nil, err
		}
		if d.train == "" || d.test == "" {
			return nil, errors.New("give --data DIR (a root in the SHLPT layout, e.g. ../shared/data/shlpt), or --train and --test")
		}
		files.Format = t.Format
	}
	if d.format != "" {
		if files.Format, err = tasks.ParseFormat(d.format); err != nil {
			return nil, err
		}
	}
	if d.train != "" {
		files.Train = d.train
	}
	if d.valid != "" {
		files.Valid = d.valid
	}
	if d.test != "" {
		files.Test = d.test
	}
	if d.trainRows != "" {
		files.TrainRows = d.trainRows
	}
	if d.testRows != "" {
		files.TestRows = d.testRows
	}
	cfg := tasks.Config{
		KTrain: d.kTrain, KVal: d.kVal, KTest: d.kTest,
		Read: tasks.ReadOptions{SkipMalformed: d.skipMalformed, MultiRCAccumulate: d.accumRefs},
	}
	return tasks.Load(t, files, d.seed, cfg)
}

func dataStats(args []string, stdout io.Writer) error {
	fs := newFlags("data stats", "data stats --data DIR --task NAME [--seed N] [--json] [flags]")
	d := addDataFlags(fs)
	asJSON := fs.Bool("json", false, `print one JSON object {"train": {"<label word>": n, ...}, "valid": {...}, "test": {...}}`)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	data, err := d.load()
	if err != nil {
		return err
	}
	t := data.Task
	names := tasks.CountNames(t)
	splits := []struct {
		name string
		exs  []tasks.Example
	}{{"train", data.Train}, {"valid", data.Valid}, {"test", data.Test}}
	if *asJSON {
		out := map[string]map[string]int{}
		for _, s := range splits {
			m := map[string]int{}
			for c, n := range tasks.CountByClass(t, s.exs) {
				m[names[c]] = n
			}
			out[s.name] = m
		}
		printNotes(os.Stderr, data) // stdout holds only the JSON object
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(stdout, "task %s, seed %d\n", t.Name, data.Seed)
	for _, r := range data.Reports {
		printReport(stdout, r)
	}
	printNotes(stdout, data)
	fmt.Fprintln(stdout)
	width := len("label")
	for _, name := range names {
		width = max(width, len(name))
	}
	row := func(label string, a, b, c any) {
		fmt.Fprintf(stdout, "%-*s %7v %7v %7v\n", width, label, a, b, c)
	}
	row("label", "train", "valid", "test")
	counts := make([][]int, len(splits))
	total := make([]int, len(splits))
	for i, s := range splits {
		counts[i] = tasks.CountByClass(t, s.exs)
		total[i] = len(s.exs)
	}
	for c, name := range names {
		row(name, counts[0][c], counts[1][c], counts[2][c])
	}
	row("total", total[0], total[1], total[2])
	return nil
}

// printNotes prints where the data departs from the reference's.
func printNotes(w io.Writer, d *tasks.Data) {
	for _, n := range d.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// printReport prints what reading a file found, including skipped rows.
func printReport(w io.Writer, r *tasks.FileReport) {
	fmt.Fprintf(w, "  %s\n", r)
	for _, e := range r.SkippedErrors {
		fmt.Fprintf(w, "    skipped %v\n", e)
	}
	if r.Skipped > len(r.SkippedErrors) {
		fmt.Fprintf(w, "    ... and %d more\n", r.Skipped-len(r.SkippedErrors))
	}
}

func dataShow(args []string, stdout io.Writer) error {
	fs := newFlags("data show", "data show --data DIR --task NAME [--seed N] [-n 5] [--split train] [--tokenizer DIR] [flags]")
	d := addDataFlags(fs)
	n := fs.IntP("count", "n", 5, "number of examples to print")
	split := fs.String("split", "train", "split to show: train, valid or test")
	tokDir := fs.String("tokenizer", "", "T5 tokenizer folder: also print token counts and truncation")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *n < 0 {
		return fmt.Errorf("--count %d: must be at least 0", *n)
	}
	var tok tasks.Tokenizer
	if *tokDir != "" {
		var err error
		if tok, err = loadTokenizer(*tokDir); err != nil {
			return err
		}
	}
	data, err := d.load()
	if err != nil {
		return err
	}
	var exs []tasks.Example
	switch *split {
	case "train":
		exs = data.Train
	case "valid":
		exs = data.Valid
	case "test":
		exs = data.Test
	default:
		return fmt.Errorf("--split %q: expected train, valid or test", *split)
	}
	t := data.Task
	fmt.Fprintf(stdout, "task %s, seed %d, %s: %d examples\n", t.Name, data.Seed, *split, len(exs))
	for _, r := range data.Reports {
		printReport(stdout, r)
	}
	printNotes(stdout, data)
	var enc []tasks.Encoded
	if tok != nil {
		if enc, err = encodeAll(stdout, tok, t, exs); err != nil {
			return err
		}
	}
	for i := 0; i < min(*n, len(exs)); i++ {
		e := exs[i]
		fmt.Fprintf(stdout, "\n[%d] %s\n", i+1, e.Pos)
		fmt.Fprintf(stdout, "input:  %s\n", strconv.Quote(e.Input))
		fmt.Fprintf(stdout, "target: %s\n", strconv.Quote(e.Target))
		if len(e.Answers) > 1 {
			fmt.Fprintf(stdout, "gold:   %q\n", e.Answers)
		}
		if enc != nil && enc[i].Input != nil {
			trunc := ""
			if enc[i].Truncated {
				trunc = fmt.Sprintf(", truncated from %d", enc[i].InputLen)
			}
			fmt.Fprintf(stdout, "tokens: input %d%s; target %d of %d\n", len(enc[i].Input), trunc, targetTokens(enc[i].Target), t.TargetLen)
		}
	}
	return nil
}

// encodeAll tokenizes every example of a split and prints how many inputs
// were truncated and which targets do not fit.
func encodeAll(w io.Writer, tok tasks.Tokenizer, t *tasks.Task, exs []tasks.Example) ([]tasks.Encoded, error) {
	enc := make([]tasks.Encoded, len(exs))
	truncated, longest, longTargets := 0, 0, 0
	var firstLong error
	for i, e := range exs {
		x, err := tasks.Encode(tok, t, e)
		if errors.Is(err, tasks.ErrTargetTooLong) {
			longTargets++
			if firstLong == nil {
				firstLong = err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		enc[i] = x
		longest = max(longest, x.InputLen)
		if x.Truncated {
			truncated++
		}
	}
	fmt.Fprintf(w, "tokens: %d of %d inputs truncated to %d (longest %d)\n", truncated, len(exs), tasks.MaxInputLen, longest)
	if longTargets > 0 {
		fmt.Fprintf(w, "tokens: %d targets longer than %d, e.g. %v\n", longTargets, t.TargetLen, firstLong)
	}
	return enc, nil
}

// targetTokens counts a padded target's ids up to and including </s>.
func targetTokens(ids []int) int {
	for i, id := range ids {
		if id == tasks.EOS {
			return i + 1
		}
	}
	return len(ids)
}

// loadTokenizer opens the T5 tokenizer in dir.
func loadTokenizer(dir string) (tasks.Tokenizer, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("--tokenizer: %w", err)
	}
	return tok, nil
}
