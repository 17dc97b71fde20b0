package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
)

// errUsage reports that flag parsing failed; the usage has been printed.
var errUsage = errors.New("usage")

// errHelp reports that --help was given; the usage has been printed.
var errHelp = errors.New("help")

// newFlags returns a flag set for a subcommand that prints its usage to stderr.
func newFlags(name, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: shlpt-vk %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and maps --help and flag errors to errUsage.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return errHelp
		}
		fmt.Fprintln(os.Stderr, err)
		return errUsage
	}
	return nil
}
