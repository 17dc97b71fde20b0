package main

import (
	"io"

	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
)

func init() {
	register(command{name: "shlptcheck", summary: "check one SHLPT training step against a reference case file", run: runSHLPTCheck})
}

func runSHLPTCheck(args []string, stdout io.Writer) error {
	return runCaseCheck("shlptcheck", "SHLPT step case (safetensors with inputs, settings in the metadata, expected.* tensors)",
		method.CheckSHLPTCase, args, stdout)
}
