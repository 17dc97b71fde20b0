package main

import (
	"fmt"
	"io"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

func init() {
	register(command{name: "shlptcheck", summary: "check one SHLPT training step against a reference case file", run: runSHLPTCheck})
}

func runSHLPTCheck(args []string, stdout io.Writer) error {
	fs := newFlags("shlptcheck", "shlptcheck --model DIR --case FILE")
	model := fs.String("model", "", "HF model folder the case was computed with")
	caseFile := fs.String("case", "", "SHLPT step case (safetensors with inputs, settings in the metadata, expected.* tensors)")
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *model == "" || *caseFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()
	e := ag.New(d)
	m, err := t5.Load(e, *model)
	if err != nil {
		return err
	}
	defer m.Release()
	res, err := method.CheckSHLPTCase(m, *caseFile)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range res {
		fmt.Fprintln(stdout, r)
		if !r.OK {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d tensors beyond tolerance", failed, len(res))
	}
	fmt.Fprintf(stdout, "all %d tensors within tolerance (%g of each tensor's largest magnitude, %g for gradients; integers exactly)\n",
		len(res), t5.CaseTol, t5.CaseGradTol)
	return d.ValidationError()
}
