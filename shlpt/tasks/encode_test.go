package tasks

import (
	"errors"
	"reflect"
	"strings"
	"testing"
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
