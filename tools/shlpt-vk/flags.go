package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

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

// parseNoArgs parses args for a command that takes only flags: a
// positional argument is a usage error that names it.
func parseNoArgs(fs *pflag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	return noArgs(fs, "")
}

// noArgs reports the positional arguments left after parsing fs as a usage
// error naming them; hint, when given, is added to the message.
func noArgs(fs *pflag.FlagSet, hint string) error {
	if fs.NArg() == 0 {
		return nil
	}
	quoted := make([]string, fs.NArg())
	for i, a := range fs.Args() {
		quoted[i] = strconv.Quote(a)
	}
	msg := fmt.Sprintf("unexpected argument %s; this command takes only flags", strings.Join(quoted, " "))
	if fs.NArg() > 1 {
		msg = fmt.Sprintf("unexpected arguments %s; this command takes only flags", strings.Join(quoted, " "))
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return &usageLineError{command: fs.Name(), msg: msg, noHelp: true}
}

// intRange checks that the integer flag name holds a value in [lo, hi].
func intRange(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("--%s %d: must be between %d and %d", name, v, lo, hi)
	}
	return nil
}

// usageLineError is a usage error (exit status 2) that dispatch prints on
// one line, naming the command.
type usageLineError struct {
	command, msg string
	noHelp       bool // no pointer to --help
}

func (e *usageLineError) Error() string { return e.msg }

// line is the message as printed.
func (e *usageLineError) line() string {
	if e.noHelp {
		return fmt.Sprintf("shlpt-vk %s: %s", e.command, e.msg)
	}
	return fmt.Sprintf("shlpt-vk %s: %s (see 'shlpt-vk %s --help')", e.command, e.msg, e.command)
}

// usageError reports a missing or wrong argument of a command on one line,
// with a pointer to its flags, as a usage error (exit status 2).
func usageError(fs *pflag.FlagSet, msg string) error {
	return &usageLineError{command: fs.Name(), msg: msg}
}
