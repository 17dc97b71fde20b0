package main

import (
	"fmt"
	"io"

	"github.com/shlpt-vk/shlpt-vk/shlpt/export"
)

func init() {
	register(command{name: "export", summary: "write a run's task prompts as PEFT prompt-tuning adapters or .npy files", run: runExport})
	register(command{name: "import", summary: "read PEFT prompt-tuning adapters into a folder of task prompts for eval --prompts and serve", run: runImport})
}

const exportSynopsis = `export RUN_DIR --format peft|npy --out DIR [--tasks a,b]`

func runExport(args []string, stdout io.Writer) error {
	fs := newFlags("export", exportSynopsis)
	format := fs.String("format", "peft", "peft: a PEFT prompt-tuning adapter folder per task (PeftModel.from_pretrained loads it); npy: a .npy file per task")
	out := fs.String("out", "", "folder to write into")
	tasks := fs.String("tasks", "", "comma-separated tasks to export (default: every task the run has learned)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		fs.Usage()
		return errUsage
	}
	paths, err := export.Export(fs.Arg(0), *format, *out, splitList(*tasks))
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	return err
}

const importSynopsis = `import ADAPTER_DIR... --out DIR [--task NAME]`

func runImport(args []string, stdout io.Writer) error {
	fs := newFlags("import", importSynopsis)
	out := fs.String("out", "", "folder of imported prompts to create or add to")
	task := fs.String("task", "", "the task of a single adapter (default: its shlpt_vk_task.json's, else the folder's name, a built-in task)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 || *out == "" {
		fs.Usage()
		return errUsage
	}
	tps, err := export.Import(fs.Args(), *out, *task)
	if err != nil {
		return err
	}
	for _, tp := range tps {
		fmt.Fprintf(stdout, "%s: prompt (%d, %d), %s decoding\n", tp.Card.Task, tp.Prompt.Lp, tp.Prompt.D, tp.Card.Decode)
	}
	fmt.Fprintf(stdout, "imported into %s\n", *out)
	return nil
}
