// Command shlpt-vk does lifelong prompt tuning of T5 (the SHLPT method and its
// baselines) on a Vulkan compute engine.
//
// Usage:
//
//	shlpt-vk <command> [flags]
//
// Each command lives in its own file and registers itself with register.
// Commands parse flags and call into the library packages; they hold no logic
// that a test would need to reach.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand of shlpt-vk.
type command struct {
	name    string
	summary string
	// run executes the command with the arguments after its name. It writes
	// results to stdout and returns an error for the caller to print.
	run func(args []string, stdout io.Writer) error
}

var commands = map[string]command{}

// register adds a subcommand; called from init functions of the command files.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("shlpt-vk: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: shlpt-vk <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'shlpt-vk <command> --help' for the flags of a command.")
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and returns the process exit code.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "shlpt-vk: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(args[1:], stdout); err != nil {
		var ul *usageLineError
		switch {
		case err == errHelp:
			return 0
		case err == errUsage:
			return 2
		case errors.As(err, &ul):
			fmt.Fprintln(stderr, ul.line())
			return 2
		}
		fmt.Fprintf(stderr, "shlpt-vk %s: %v\n", c.name, err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}
