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
		{"decode", true, "8774 6 296 55 1\n\n37 32099 10681 1\n 0 3 9 1 32127 \n",
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
