package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

func init() {
	register(command{name: "tokenize", summary: "T5 token ids of lines on stdin, or their text (--decode)", run: runTokenize})
}

func runTokenize(args []string, stdout io.Writer) error {
	fs := newFlags("tokenize", "tokenize --tokenizer DIR [--decode] < lines")
	dir := fs.String("tokenizer", os.Getenv(testenv.TokenizerEnv), "folder holding the T5 tokenizer.json (default $"+testenv.TokenizerEnv+")")
	decode := fs.Bool("decode", false, "read lines of space-separated ids and print their text, skipping special tokens")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "shlpt-vk tokenize: unexpected argument %q; the text comes on stdin\n", fs.Arg(0))
		return errUsage
	}
	if *dir == "" {
		return errors.New("--tokenizer DIR is required")
	}
	tk, err := tokenizer.Load(*dir)
	if err != nil {
		return err
	}
	return tokenizeLines(tk, os.Stdin, stdout, *decode)
}

// tokenizeLines reads lines from in and writes, for each, its ids separated by
// single spaces (ending with </s> = 1), or with decode the text of a line of
// ids. Output is flushed whenever the input has nothing buffered, so that
// the command answers line by line when used interactively.
func tokenizeLines(tk *tokenizer.Tokenizer, in io.Reader, out io.Writer, decode bool) error {
	r := bufio.NewReaderSize(in, 1<<16)
	w := bufio.NewWriterSize(out, 1<<16)
	var buf []byte
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("stdin: %v", err)
		}
		if line == "" && err == io.EOF {
			break
		}
		line = strings.TrimSuffix(line, "\n")
		if decode {
			ids, perr := parseIDs(line)
			if perr != nil {
				return fmt.Errorf("line %d: %v", n, perr)
			}
			w.WriteString(tk.Decode(ids))
		} else {
			ids, eerr := tk.Encode(line)
			if eerr != nil {
				return fmt.Errorf("line %d: %v", n, eerr)
			}
			buf = buf[:0]
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ' ')
				}
				buf = strconv.AppendInt(buf, int64(id), 10)
			}
			w.Write(buf)
		}
		w.WriteByte('\n')
		if r.Buffered() == 0 {
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			break
		}
	}
	return w.Flush()
}

// parseIDs reads space-separated non-negative integer ids. Ids beyond the
// tokenizer's vocabulary (such as the unused model rows 32100-32127) are
// accepted; Decode skips them.
func parseIDs(line string) ([]int, error) {
	fields := strings.Fields(line)
	ids := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a token id", f)
		}
		ids[i] = v
	}
	return ids, nil
}
