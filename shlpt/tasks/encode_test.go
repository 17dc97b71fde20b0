package tasks

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// wordTokenizer gives each word the id 100+its length and appends EOS.
type wordTokenizer struct{ noEOS bool }

func (w wordTokenizer) Encode(text string) ([]int, error) {
	if strings.Contains(text, "FAIL") {
		return nil, errors.New("cannot tokenize")
	}
	var ids []int
	for _, f := range strings.Fields(text) {
		ids = append(ids, 100+len(f))
	}
	if w.noEOS {
		return ids, nil
	}
	return append(ids, EOS), nil
}

func TestEncode(t *testing.T) {
	words := func(n int) string { return strings.Repeat("ab ", n) }
	tk, _ := Lookup("rte") // target length 6
	for _, tc := range []struct {
		name          string
		input, target string
		wantLen       int
		wantTrunc     bool
		wantTarget    []int
	}{
		{"short", "a bb", "entailment", 3, false, []int{110, EOS, 0, 0, 0, 0}},
		{"exactly 256 with </s>", words(255), "x", 256, false, []int{101, EOS, 0, 0, 0, 0}},
		{"257 is cut", words(256), "x", 256, true, []int{101, EOS, 0, 0, 0, 0}},
		{"long", words(1000), "a b c d e", 256, true, []int{101, 101, 101, 101, 101, EOS}},
		{"empty", "", "", 1, false, []int{EOS, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Encode(wordTokenizer{}, tk, Example{Input: tc.input, Target: tc.target})
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Input) != tc.wantLen || e.Truncated != tc.wantTrunc || e.Input[len(e.Input)-1] != EOS {
				t.Errorf("input len %d truncated %v last %d; want %d %v </s>", len(e.Input), e.Truncated, e.Input[len(e.Input)-1], tc.wantLen, tc.wantTrunc)
			}
			if e.InputLen != len(strings.Fields(tc.input))+1 {
				t.Errorf("InputLen %d", e.InputLen)
			}
			if !reflect.DeepEqual(e.Target, tc.wantTarget) {
				t.Errorf("target %v, want %v", e.Target, tc.wantTarget)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tk, _ := Lookup("sst2") // target length 2
	ex := Example{Input: "x", Target: "two words", Pos: Position{"f.tsv", 9}}
	_, err := Encode(wordTokenizer{}, tk, ex)
	if !errors.Is(err, ErrTargetTooLong) || !strings.Contains(err.Error(), "f.tsv:9: ") || !strings.Contains(err.Error(), `"two words" is 3 tokens`) || !strings.Contains(err.Error(), "target length 2") {
		t.Errorf("long target: %v", err)
	}
	_, err = Encode(wordTokenizer{noEOS: true}, tk, Example{Input: "x", Target: "y"})
	if err == nil || !strings.Contains(err.Error(), "do not end with </s>") {
		t.Errorf("no </s>: %v", err)
	}
	_, err = Encode(wordTokenizer{}, tk, Example{Input: "FAIL", Target: "y"})
	if err == nil || !strings.Contains(err.Error(), "cannot tokenize") {
		t.Errorf("tokenizer error: %v", err)
	}
	if _, err := EncodeLen(wordTokenizer{}, ex, 0, 2); err == nil {
		t.Error("zero input length accepted")
	}
}

// With T5's tokenizer every label word fits its task's target length, as the
// reference's assertion requires; rte and qqp need all 6.
func TestLabelWordsFit(t *testing.T) {
	tok, err := tokenizer.Load(testenv.Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range All() {
		for _, w := range tk.Labels {
			e, err := Encode(tok, tk, Example{Input: "x", Target: w})
			if err != nil {
				t.Errorf("%s: %v", tk.Name, err)
				continue
			}
			if n := targetLen(e.Target); tk.Name == "rte" && w == "not_entailment" && n != 6 {
				t.Errorf("rte %q is %d tokens, want 6", w, n)
			}
		}
	}
}

// SQuAD dev answers fit 76 tokens; long contexts are truncated to 256.
func TestEncodeReal(t *testing.T) {
	tok, err := tokenizer.Load(testenv.Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	root := testenv.Data(t)
	sq, _ := Lookup("squad")
	exs, _, err := ReadFile(sq, SQuADJSON, filepath.Join(root, "squad_v2/dev-v2.0.json"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	truncated := 0
	for _, ex := range exs[:1000] {
		e, err := Encode(tok, sq, ex)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Input) > MaxInputLen || e.Input[len(e.Input)-1] != EOS || len(e.Target) != sq.TargetLen {
			t.Fatalf("%s: input %d ids, target %d", ex.Pos, len(e.Input), len(e.Target))
		}
		if e.Truncated {
			truncated++
		}
	}
	if truncated == 0 {
		t.Error("no SQuAD input was truncated; contexts are often longer than 256 tokens")
	}
}

func targetLen(ids []int) int {
	for i, id := range ids {
		if id == EOS {
			return i + 1
		}
	}
	return len(ids)
}
