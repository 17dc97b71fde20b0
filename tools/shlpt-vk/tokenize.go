package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// tokenizerEnv names the tokenizer folder when --tokenizer is not given
// (the variable the tests read too).
const tokenizerEnv = "SHLPT_TOKENIZER"

func init() {
	register(command{name: "tokenize", summary: "T5 token ids of lines on stdin, or their text (--decode)", run: runTokenize})
}

func runTokenize(args []string, stdout io.Writer) error {
	fs := newFlags("tokenize", "tokenize --tokenizer DIR [--decode] < lines")
	dir := fs.String("tokenizer", os.Getenv(tokenizerEnv), "folder holding the T5 tokenizer.json (default $"+tokenizerEnv+")")
	decode := fs.Bool("decode", false, "read lines of space-separated ids and print their text, skipping special tokens; an id beyond the vocabulary is an error")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, "the text comes on stdin"); err != nil {
		return err
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

// maxTokenizeLine bounds one line of tokenize's input.
const maxTokenizeLine = 64 << 20

// tokenizeLines reads lines from in and writes, for each, its ids separated by
// single spaces (ending with </s> = 1), or with decode the text of a line of
// ids. Output is flushed whenever the input has nothing buffered, so that
// the command answers line by line when used interactively. A line that
// fails ends the run with an error naming it; the output of every line
// before it is written.
func tokenizeLines(tk *tokenizer.Tokenizer, in io.Reader, out io.Writer, decode bool) error {
	return tokenizeLinesLimit(tk, in, out, decode, maxTokenizeLine)
}

// tokenizeLinesLimit is tokenizeLines with lines of at most maxLine bytes.
func tokenizeLinesLimit(tk *tokenizer.Tokenizer, in io.Reader, out io.Writer, decode bool, maxLine int64) error {
	w := bufio.NewWriterSize(out, 1<<16)
	err := convertLines(tk, in, w, decode, maxLine)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func convertLines(tk *tokenizer.Tokenizer, in io.Reader, w *bufio.Writer, decode bool, maxLine int64) error {
	r := bufio.NewReaderSize(limitio.Lines(in, maxLine), 1<<16)
	var buf []byte
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("stdin: %v", err)
		}
		if line == "" && err == io.EOF {
			return nil
		}
		line = strings.TrimSuffix(line, "\n")
		if decode {
			ids, perr := parseIDs(line, tk.VocabSize())
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
			return nil
		}
	}
}

// parseIDs reads space-separated token ids, each below vocab (the
// tokenizer's ids; T5's model has 28 more embedding rows, 32100-32127, which
// no token has).
func parseIDs(line string, vocab int) ([]int, error) {
	fields := strings.Fields(line)
	ids := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q is not a token id", f)
		}
		if v >= vocab {
			return nil, fmt.Errorf("id %d is beyond the tokenizer's vocabulary (ids 0 to %d)", v, vocab-1)
		}
		ids[i] = v
	}
	return ids, nil
}
