package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func init() {
	register(command{name: "t5check", summary: "check a T5 checkpoint against a reference case file", run: runT5Check})
}

func runT5Check(args []string, stdout io.Writer) error {
	return runCaseCheck("t5check", "case file (safetensors with inputs and expected.* tensors)", t5.CheckCase, args, stdout)
}

// runCaseCheck is a command that loads --model, runs check on --case and
// prints one line per expected tensor; it fails when any is beyond
// tolerance.
func runCaseCheck(name, caseHelp string, check func(*t5.Model, string) ([]t5.CaseResult, error), args []string, stdout io.Writer) error {
	fs := newFlags(name, name+" --model DIR --case FILE")
	model := fs.String("model", "", "HF model folder (config.json and model.safetensors or a sharded index)")
	caseFile := fs.String("case", "", caseHelp)
	weights := weightsFlag(fs)
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" || *caseFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	wt, err := t5.ParseWeights(*weights)
	if err != nil {
		return fmt.Errorf("--%w", err)
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	e := ag.New(d)
	m, err := t5.LoadWith(e, *model, t5.LoadOptions{Weights: wt})
	if err != nil {
		return err
	}
	defer m.Release()
	res, err := check(m, *caseFile)
	if err != nil {
		return err
	}
	failed, skipped := 0, 0
	for _, r := range res {
		fmt.Fprintln(stdout, r)
		if r.Skipped != "" {
			skipped++
		} else if !r.OK {
			failed++
		}
	}
	compared := len(res) - skipped
	if failed > 0 {
		return fmt.Errorf("%d of %d tensors beyond tolerance (weights stored as %v)", failed, compared, wt)
	}
	note := ""
	if skipped > 0 {
		note = fmt.Sprintf("; %d gradients of frozen %v weights skipped", skipped, wt)
	}
	fmt.Fprintf(stdout, "all %d tensors within tolerance (%g of each tensor's largest magnitude, %g for gradients; integers exactly%s)\n",
		compared, t5.CaseTol, t5.CaseGradTol, note)
	return d.ValidationError()
}

// weightsFlag adds --weights, the storage of a model's 2-D weights.
func weightsFlag(fs *pflag.FlagSet) *string {
	return fs.String("weights", "f32", "storage of the frozen 2-D weights (projections, embedding): f32, bf16 or f16 (16-bit weights are widened to fp32 as they are read; models with them cannot be fully fine-tuned)")
}
