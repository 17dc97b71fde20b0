package tokenizer

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

var (
	loadOnce sync.Once
	loaded   *Tokenizer
	loadErr  error
)

// load returns the shared T5 tokenizer, or skips (fails under
// SHLPT_VK_REQUIRE=1) when SHLPT_TOKENIZER is not set.
func load(t testing.TB) *Tokenizer {
	t.Helper()
	dir := testenv.Tokenizer(t)
	loadOnce.Do(func() { loaded, loadErr = Load(dir) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

type goldenCase struct {
	Src  string `json:"src"`
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

func readGolden(t testing.TB) []goldenCase {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "spm_golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []goldenCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var c goldenCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("spm_golden.jsonl:%d: %v", line, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 400 {
		t.Fatalf("spm_golden.jsonl has %d cases; regenerate it with go generate", len(cases))
	}
	return cases
}

// TestGolden compares with ids that spm_encode produced (see gengolden).
func TestGolden(t *testing.T) {
	tk := load(t)
	cases := readGolden(t)
	bad := 0
	for i, c := range cases {
		got, err := tk.Encode(c.Text)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if !reflect.DeepEqual(got, c.IDs) {
			if bad++; bad <= 10 {
				t.Errorf("spm_golden.jsonl:%d (%s) %q:\n got  %v\n want %v", i+1, c.Src, c.Text, got, c.IDs)
			}
		}
	}
	t.Logf("%d/%d golden lines equal", len(cases)-bad, len(cases))
}

// TestLiveSentencePiece runs spm_encode on the golden texts, so that a stale
// golden file or a different spiece.model shows up.
func TestLiveSentencePiece(t *testing.T) {
	tk := load(t)
	spm, err := exec.LookPath("spm_encode")
	if err != nil {
		testenv.Missing(t, "spm_encode is not on PATH (Debian package sentencepiece)")
		return
	}
	model := filepath.Join(testenv.Tokenizer(t), "spiece.model")
	cases := append(readGolden(t), invalidUTF8...)
	texts := make([]string, len(cases))
	for i, c := range cases {
		texts[i] = c.Text
	}
	cmd := exec.Command(spm, "--model="+model, "--output_format=id")
	cmd.Stdin = strings.NewReader(strings.Join(texts, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spm_encode: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("spm_encode gave %d lines for %d texts", len(lines), len(texts))
	}
	bad := 0
	for i, c := range cases {
		ids, _ := tk.Encode(c.Text)
		got := joinInts(ids[:len(ids)-1])
		if got != lines[i] || ids[len(ids)-1] != 1 {
			if bad++; bad <= 10 {
				t.Errorf("%q:\n spm_encode %s\n Encode     %v", c.Text, lines[i], ids)
			}
		}
		if joinInts(c.IDs) != strings.TrimSpace(lines[i]+" 1") {
			t.Errorf("golden line %d is stale: %q", i+1, c.Text)
		}
	}
	t.Logf("%d/%d lines equal spm_encode", len(cases)-bad, len(cases))
}

func joinInts(ids []int) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(itoa(id))
	}
	return b.String()
}

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var buf [20]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

func encode(t *testing.T, tk *Tokenizer, s string) []int {
	t.Helper()
	ids, err := tk.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestWhitespace checks the cases where sugarme v0.3.0 emitted extra "▁"
// (id 3) tokens: runs of spaces, tabs, leading and trailing whitespace.
func TestWhitespace(t *testing.T) {
	tk := load(t)
	same := [][]string{
		{"a b", "a  b", "a     b", "a\tb", "a \t b", " a b", "\t\ta b  ", "a\u00a0b", "a\u3000b"},
		{"x y", "\tx\ty ", "x\t\ty", "  x   y  "},
		{"", " ", "\t", "   \t  "},
	}
	for _, group := range same {
		want := encode(t, tk, group[0])
		for _, s := range group[1:] {
			if got := encode(t, tk, s); !reflect.DeepEqual(got, want) {
				t.Errorf("Encode(%q) = %v, want %v as for %q", s, got, want, group[0])
			}
		}
	}
	// A lone "▁" is legitimate where no piece starts with "▁" plus the next
	// character: SentencePiece gives "▁" "a" for "a".
	if got, want := encode(t, tk, "a"), []int{3, 9, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("Encode(a) = %v, want %v", got, want)
	}
	if got := encode(t, tk, ""); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("Encode(\"\") = %v, want [1]", got)
	}
}

// TestNewlines: spm_encode reads one line at a time, so the golden file has
// no newlines. The charsmap maps them to spaces, which makes a newline the
// same as a space for SentencePiece.
func TestNewlines(t *testing.T) {
	tk := load(t)
	for _, c := range []string{"\n", "\r", "\t", "\r\n"} {
		if repl, n := tk.norm.normalizePrefix(c); repl != " " {
			t.Errorf("charsmap maps %q (%d bytes) to %q, not a space", c, n, repl)
		}
	}
	pairs := [][2]string{
		{"line one\nline two", "line one line two"},
		{"a\r\nb", "a b"},
		{"\n\nx\n", "x"},
		{"sentence 1: You are not being rude.\nsentence 2: You think before you speak.", "sentence 1: You are not being rude. sentence 2: You think before you speak."},
	}
	for _, p := range pairs {
		if got, want := encode(t, tk, p[0]), encode(t, tk, p[1]); !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", p[0], got, want)
		}
	}
}

// invalidUTF8 holds texts with malformed UTF-8, which the JSON golden file
// cannot hold, with the ids of spm_encode 0.1.97 (plus 1). SentencePiece
// reads each malformed byte as U+FFFD without normalizing it, so it becomes
// <unk> (runs merged), while a literal U+FFFD is removed by the charsmap.
var invalidUTF8 = []goldenCase{
	{Text: "a\xffb\xc3", IDs: []int{3, 9, 2, 115, 2, 1}},
	{Text: "\xff\xfe", IDs: []int{3, 2, 1}},
	{Text: "a\uFFFDb", IDs: []int{3, 9, 3, 115, 1}},
}

func TestInvalidUTF8(t *testing.T) {
	tk := load(t)
	for _, c := range invalidUTF8 {
		if got := encode(t, tk, c.Text); !reflect.DeepEqual(got, c.IDs) {
			t.Errorf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
		}
	}
}

// TestSentinels checks added tokens against HuggingFace's T5 documentation
// (the span-corruption example) and the lstrip/rstrip rules.
func TestSentinels(t *testing.T) {
	tk := load(t)
	cases := []struct {
		text string
		want []int
	}{
		{"The <extra_id_0> walks in <extra_id_1> park", []int{37, 32099, 10681, 16, 32098, 2447, 1}},
		{"<extra_id_0> cute dog <extra_id_1> the <extra_id_2>", []int{32099, 5295, 1782, 32098, 8, 32097, 1}},
		{"The<extra_id_0>walks in<extra_id_1>park", []int{37, 32099, 10681, 16, 32098, 2447, 1}},
		{"The \t<extra_id_0>\n walks", []int{37, 32099, 10681, 1}},
		{"<extra_id_0>", []int{32099, 1}},
		{"<extra_id_99><extra_id_0>", []int{32000, 32099, 1}},
		{"hello</s>", []int{21820, 1, 1}},
		{"<pad>", []int{0, 1}},
		{"<unk>", []int{2, 1}},
	}
	for _, c := range cases {
		if got := encode(t, tk, c.text); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	// Not sentinels: spelled out as SentencePiece does.
	for _, s := range []string{"<extra_id_100>", "<extra_id>", "<extra id_0>"} {
		ids := encode(t, tk, s)
		for _, id := range ids {
			if id >= 32000 {
				t.Errorf("Encode(%q) = %v holds an added token", s, ids)
			}
		}
	}
}

func TestVocab(t *testing.T) {
	tk := load(t)
	if n := tk.VocabSize(); n != 32100 {
		t.Errorf("VocabSize = %d, want 32100", n)
	}
	for tok, want := range map[string]int{"<pad>": 0, "</s>": 1, "<unk>": 2, "▁": 3, "▁the": 8, "<extra_id_0>": 32099, "<extra_id_99>": 32000} {
		if id, ok := tk.TokenID(tok); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", tok, id, ok, want)
		}
		if s, ok := tk.Token(want); !ok || s != tok {
			t.Errorf("Token(%d) = %q, %v; want %q", want, s, ok, tok)
		}
	}
	if _, ok := tk.TokenID("no such piece"); ok {
		t.Error("TokenID of an unknown piece succeeded")
	}
	if _, ok := tk.Token(32100); ok {
		t.Error("Token(32100) succeeded")
	}
	for _, id := range []int{0, 1, 2, 32000, 32099} {
		if !tk.IsSpecial(id) {
			t.Errorf("IsSpecial(%d) = false", id)
		}
	}
	if tk.IsSpecial(3) || tk.IsSpecial(-1) || tk.IsSpecial(40000) {
		t.Error("IsSpecial true for an ordinary or invalid id")
	}
}

func TestDecode(t *testing.T) {
	tk := load(t)
	cases := []struct {
		ids  []int
		want string
	}{
		{[]int{8774, 6, 296, 55, 1}, "Hello, world!"},
		{[]int{0, 32099, 5295, 1782, 32098, 8, 32097, 1, 0, 0}, "cute dog the"},
		{[]int{37, 2, 629, 1}, "The house"},
		{[]int{3, 9, 1}, "a"},
		{[]int{1}, ""},
		{[]int{-5, 99999, 8774}, "Hello"},
		// clean_up_tokenization_spaces, as HF applies it for T5.
		{encode(t, tk, "Hello , world . Is it ? I do n't know ."), "Hello, world. Is it? I don't know."},
	}
	for _, c := range cases {
		if got := tk.Decode(c.ids); got != c.want {
			t.Errorf("Decode(%v) = %q, want %q", c.ids, got, c.want)
		}
	}
}

// TestRoundTrip: for text that SentencePiece can spell without <unk>,
// decoding and encoding again gives the same ids (with HF's clean-up of
// spaces before punctuation off, since it changes the text on purpose).
func TestRoundTrip(t *testing.T) {
	tk := load(t)
	raw := *tk
	raw.cleanUp = false
	n := 0
	for _, c := range readGolden(t) {
		if contains(c.IDs, 2) {
			continue
		}
		text := raw.Decode(c.IDs)
		if again := encode(t, &raw, text); !reflect.DeepEqual(again, c.IDs) {
			t.Errorf("%q decodes to %q, which encodes to\n %v, not\n %v", c.Text, text, again, c.IDs)
		}
		n++
	}
	if n < 300 {
		t.Errorf("only %d golden lines without <unk>", n)
	}
}

func contains(ids []int, v int) bool {
	for _, id := range ids {
		if id == v {
			return true
		}
	}
	return false
}

func TestEncodeBatch(t *testing.T) {
	tk := load(t)
	cases := readGolden(t)
	texts := make([]string, len(cases))
	for i, c := range cases {
		texts[i] = c.Text
	}
	for _, n := range []int{0, 3, len(texts)} {
		got, err := tk.EncodeBatch(texts[:n])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%d results for %d texts", len(got), n)
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], cases[i].IDs) {
				t.Errorf("batch item %d: %v, want %v", i, got[i], cases[i].IDs)
			}
		}
	}
}

// TestLoadErrors edits a copy of tokenizer.json and expects errors that name
// the file.
func TestLoadErrors(t *testing.T) {
	src := testenv.Tokenizer(t)
	raw, err := os.ReadFile(filepath.Join(src, FileName))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"bpe model", func(m map[string]any) { m["model"].(map[string]any)["type"] = "BPE" }, "not Unigram"},
		{"bad unk", func(m map[string]any) { m["model"].(map[string]any)["unk_id"] = 1e9 }, "unk_id"},
		{"lowercase", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }, "not supported"},
		{"no charsmap", func(m map[string]any) { m["normalizer"] = nil }, "no Precompiled charsmap"},
		{"bad charsmap", func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Precompiled", "precompiled_charsmap": "/////wAAAAA="}
		}, "does not fit"},
		{"byte level", func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "ByteLevel"} }, "pre_tokenizer"},
		{"bert template", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "BertProcessing"} }, "post_processor"},
		{"clashing added token", func(m map[string]any) {
			m["added_tokens"] = append(m["added_tokens"].([]any), map[string]any{"id": 5.0, "content": "<x>", "special": true})
		}, "<x>"},
		// Such an id used to grow the id table to 2·10⁹ entries.
		{"added token id far beyond the vocabulary", func(m map[string]any) {
			m["added_tokens"] = append(m["added_tokens"].([]any), map[string]any{"id": 2e9, "content": "<far>", "special": true})
		}, `token "<far>" has id 2000000000, outside 0..32203`},
		{"negative added token id", func(m map[string]any) {
			m["added_tokens"] = append(m["added_tokens"].([]any), map[string]any{"id": -1.0, "content": "<neg>"})
		}, `token "<neg>" has id -1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			json.Unmarshal(raw, &m) // fresh copy
			c.edit(m)
			dir := t.TempDir()
			b, _ := json.Marshal(m)
			os.WriteFile(filepath.Join(dir, FileName), b, 0o644)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
				t.Errorf("err = %v; want one naming the file and containing %q", err, c.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of an empty folder: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), []byte("{"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), FileName) {
		t.Errorf("truncated JSON: %v", err)
	}
}

func BenchmarkEncode(b *testing.B) {
	tk := load(b)
	cases := readGolden(b)
	nbytes := 0
	for _, c := range cases {
		nbytes += len(c.Text)
	}
	b.SetBytes(int64(nbytes))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range cases {
			tk.Encode(c.Text)
		}
	}
	b.ReportMetric(float64(b.N*len(cases))/b.Elapsed().Seconds(), "lines/s")
}

// TestLoadBounded: tokenizer.json and tokenizer_config.json that are links
// to /dev/zero, or larger than their limits, are errors naming the file
// instead of reads that grow until memory runs out.
func TestLoadBounded(t *testing.T) {
	src := testenv.Tokenizer(t)
	for _, name := range []string{FileName, ConfigFileName} {
		dir := t.TempDir()
		for _, f := range []string{FileName, ConfigFileName} {
			if err := os.Symlink(filepath.Join(src, f), filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		link := filepath.Join(dir, name)
		os.Remove(link)
		if err := os.Symlink("/dev/zero", link); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s a link to /dev/zero: %v", name, err)
		}
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(src, FileName), filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, ConfigFileName)
	if err := os.WriteFile(big, append([]byte(`{"clean_up_tokenization_spaces": true}`), make([]byte, MaxConfigSize)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "allowed for a tokenizer_config.json") {
		t.Errorf("large tokenizer_config.json: %v", err)
	}
}
