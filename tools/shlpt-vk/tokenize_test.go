package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

func TestTokenizeLines(t *testing.T) {
	tk, err := tokenizer.Load(testenv.Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		decode bool
		in     string
		want   string
	}{
		{"encode", false, "Hello, world!\n\nThe <extra_id_0> walks\ttwo  spaces\r\nlast line without newline",
			"8774 6 296 55 1\n1\n37 32099 10681 192 4856 1\n336 689 406 126 747 1\n"},
		{"empty input", false, "", ""},
		{"decode", true, "8774 6 296 55 1\n\n37 32099 10681 1\n 0 3 9 1 \n",
			"Hello, world!\n\nThe walks\na\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tokenizeLines(tk, strings.NewReader(c.in), &out, c.decode); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("got\n%q\nwant\n%q", out.String(), c.want)
			}
		})
	}
	for _, in := range []string{"1 2\n3 x 4\n", "1 -2\n", "1.5\n"} {
		err := tokenizeLines(tk, strings.NewReader(in), &bytes.Buffer{}, true)
		if err == nil || !strings.Contains(err.Error(), "line") || !strings.Contains(err.Error(), "not a token id") {
			t.Errorf("decode %q: err = %v", in, err)
		}
	}
	// Ids beyond the tokenizer's 32100 (the model's unused rows up to 32127
	// included) are errors naming the id and the line, not empty output.
	for _, in := range []string{"1\n0 3 9 32127\n", "1\n32100\n", "1\n99999999999\n"} {
		err := tokenizeLines(tk, strings.NewReader(in), &bytes.Buffer{}, true)
		id := strings.Fields(strings.Split(in, "\n")[1])
		if err == nil || !strings.Contains(err.Error(), "line 2: id "+id[len(id)-1]+" is beyond the tokenizer's vocabulary (ids 0 to 32099)") {
			t.Errorf("decode %q: err = %v", in, err)
		}
	}
	// Encoding and decoding round-trips ordinary text.
	var ids, text bytes.Buffer
	src := "Studies have been shown that owning a dog is good for you\nC'est déjà l'été.\n"
	if err := tokenizeLines(tk, strings.NewReader(src), &ids, false); err != nil {
		t.Fatal(err)
	}
	if err := tokenizeLines(tk, &ids, &text, true); err != nil {
		t.Fatal(err)
	}
	if text.String() != src {
		t.Errorf("round trip: %q, want %q", text.String(), src)
	}
}

// TestTokenizeCommand runs the command through the dispatcher with a file as
// stdin.
func TestTokenizeCommand(t *testing.T) {
	dir := testenv.Tokenizer(t)
	in := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(in, []byte("Hello, world!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	var out, errb bytes.Buffer
	if code := dispatch([]string{"tokenize", "--tokenizer", dir}, &out, &errb); code != 0 || out.String() != "8774 6 296 55 1\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

func TestTokenizeFlags(t *testing.T) {
	t.Setenv(testenv.TokenizerEnv, "")
	var out, errb bytes.Buffer
	if code := dispatch([]string{"tokenize"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--tokenizer") {
		t.Errorf("no --tokenizer: exit %d, stderr %q", code, errb.String())
	}
	if code := dispatch([]string{"tokenize", "--tokenizer", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "tokenizer.json") {
		t.Errorf("empty folder: exit %d, stderr %q", code, errb.String())
	}
	if code := dispatch([]string{"tokenize", "--bogus"}, &out, &errb); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if code := dispatch([]string{"tokenize", "stray"}, &out, &errb); code != 2 {
		t.Errorf("stray argument: exit %d", code)
	}
}

// TestTokenizeKeepsOutput: when a line fails, the output of every line
// before it has been written, and the error names the failing line.
func TestTokenizeKeepsOutput(t *testing.T) {
	tk, err := tokenizer.Load(testenv.Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = tokenizeLines(tk, strings.NewReader("8774 6 296 55 1\n37 1\n1 x\n8774 1\n"), &out, true)
	if err == nil || !strings.HasPrefix(err.Error(), "line 3: ") || out.String() != "Hello, world!\nThe\n" {
		t.Errorf("decode: out %q, err %v", out.String(), err)
	}
	// A line beyond the limit, while encoding.
	out.Reset()
	err = tokenizeLinesLimit(tk, strings.NewReader("Hello, world!\nThe\n"+strings.Repeat("x", 100)+"\nlast\n"), &out, false, 64)
	if err == nil || !strings.Contains(err.Error(), "line 3 is longer than 64 bytes") || out.String() != "8774 6 296 55 1\n37 1\n" {
		t.Errorf("encode: out %q, err %v", out.String(), err)
	}
	// An input that never ends a line (/dev/zero) stops at the limit.
	f, err := os.Open("/dev/zero")
	if err != nil {
		testenv.Missing(t, "cannot open /dev/zero: "+err.Error())
	}
	defer f.Close()
	if err := tokenizeLinesLimit(tk, f, &out, false, 1<<16); err == nil || !strings.Contains(err.Error(), "line 1 is longer than 64 KiB") {
		t.Errorf("/dev/zero: %v", err)
	}
}
