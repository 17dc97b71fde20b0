package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/gpu"
	"github.com/shlpt-vk/shlpt-vk/kernels"
)

func init() {
	register(command{name: "bench", summary: "benchmark the kernels (median device time, GFLOP/s, GB/s)", run: runBench})
}

// benchSubcommands are `shlpt-vk bench <name>` forms handled elsewhere.
var benchSubcommands = map[string]func(args []string, stdout io.Writer) error{}

func runBench(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		if sub, ok := benchSubcommands[args[0]]; ok {
			return sub(args[1:], stdout)
		}
	}
	fs := newFlags("bench", "bench [--op NAME] [--shape AxBxC] [--runs N] [--json]")
	opName := fs.String("op", "", "run only this op (default: all)")
	shape := fs.String("shape", "", "run only this shape (with --op; any shape the op accepts)")
	runs := fs.Int("runs", 20, "timed runs per case (after one warm-up)")
	asJSON := fs.Bool("json", false, "print one JSON object per case")
	bwMiB := fs.Int("copy-mib", 64, "buffer size for the copy-bandwidth reference, MiB")
	opts := deviceFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	subs := make([]string, 0, len(benchSubcommands))
	for name := range benchSubcommands {
		subs = append(subs, name)
	}
	sort.Strings(subs)
	if err := noArgs(fs, "subcommands, given first: "+strings.Join(subs, ", ")); err != nil {
		return err
	}
	if err := intRange("runs", *runs, 1, maxBenchRuns); err != nil {
		return err
	}
	if err := intRange("copy-mib", *bwMiB, 1, 1<<16); err != nil {
		return err
	}
	if *shape != "" && *opName == "" {
		return fmt.Errorf("--shape needs --op")
	}
	var ops []kernels.BenchOp
	if *opName != "" {
		op, err := kernels.LookupBench(*opName)
		if err != nil {
			return err
		}
		ops = []kernels.BenchOp{op}
	} else {
		ops = kernels.BenchOps()
	}
	d, err := gpu.Open(opts())
	if err != nil {
		return err
	}
	defer d.Close()

	bw, err := kernels.CopyBandwidth(d, int64(*bwMiB)<<20, 10)
	if err != nil {
		return fmt.Errorf("measuring copy bandwidth: %w", err)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "device: %s\ncopy bandwidth (reference for memory-bound ops): %.1f GB/s\n\n", d, bw/1e9)
	}
	enc := json.NewEncoder(stdout)
	const rowFormat = "%-16s %-20s %12s %10s %8s %10s\n"
	if !*asJSON {
		fmt.Fprintf(stdout, rowFormat, "op", "shape", "median µs", "GFLOP/s", "GB/s", "% copy BW")
	}
	for _, op := range ops {
		shapes := op.Shapes
		if *shape != "" {
			shapes = []string{*shape}
		}
		for _, s := range shapes {
			c, err := op.Make(d, s)
			if err != nil {
				return fmt.Errorf("%s %s: %w", op.Name, s, err)
			}
			res, err := kernels.RunBench(d, c, *runs, bw)
			c.Free()
			if err != nil {
				return err
			}
			if *asJSON {
				if err := enc.Encode(res); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(stdout, rowFormat, res.Op, res.Shape, fmt.Sprintf("%.1f", res.MedianUS),
				optional(res.GFLOPS), optional(res.GBPS), optional(res.PctCopy))
		}
	}
	if err := d.ValidationError(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return nil
}

func optional(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}
