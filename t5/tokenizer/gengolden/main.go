// Command gengolden regenerates the tokenizer's golden file: hand-made edge
// cases plus sentences sampled from the task data, each with the ids that
// SentencePiece's spm_encode gives (and the </s> = 1 that the T5 template
// appends). Run from t5/tokenizer with `go generate`, or:
//
//	SHLPT_DATA=../shared/data SHLPT_TOKENIZER=../shared/assets/t5-tokenizer \
//	  go run ./t5/tokenizer/gengolden -o t5/tokenizer/testdata/spm_golden.jsonl
//
// It needs spm_encode on PATH (Debian package sentencepiece). It also prints
// how often this package and plain sugarme agree with SentencePiece, and the
// encoding speed.
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// Case is one line of the golden file.
type Case struct {
	Src  string `json:"src"`
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

// edgeCases are hand-made texts for what real data rarely shows at once.
var edgeCases = []string{
	"",
	" ",
	"   ",
	"\t",
	"a",
	"Hello, world!",
	"translate English to German: The house is wonderful.",
	"Studies have been shown that owning a dog is good for you",
	"two  spaces",
	"three   spaces and    four",
	"many          spaces",
	"  leading spaces",
	"trailing spaces   ",
	"   both sides   ",
	"\tleading tab",
	"trailing tab\t",
	"tab\tseparated\tvalues",
	"tab \t mixed \t\t with spaces",
	"\t \t",
	"a\u00a0non-breaking\u00a0space",
	"ideographic\u3000space",
	"en\u2002quad and em\u2003space",
	"zero\u200bwidth space",
	"soft\u00adhyphen",
	"vertical\vtab and form\ffeed",
	"carriage\rreturn",
	"bell\x07char and nul-free controls \x01\x02",
	"Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u00efve co\u00f6perate",
	"Cafe\u0301 with a combining accent",
	"\u00c5ngstr\u00f6m, \u0141\u00f3d\u017a, \u0160koda, \u00d8resund, Stra\u00dfe",
	"\u2018single\u2019 and \u201cdouble\u201d curly quotes",
	"\"straight\" and 'single' quotes, `backticks`",
	"\u00ab guillemets \u00bb and \u201eGerman\u201c quotes",
	"He said: \"It's 5 o'clock\" -- isn't it?",
	"don't won't can't I'm you're we've",
	"em\u2014dash, en\u2013dash, ellipsis\u2026 and minus \u2212",
	"https://www.example.com/path/to/page?query=1&x=y#frag",
	"Visit http://t5.dev or mail someone@example.org today.",
	"C:\\Program Files\\app.exe and /usr/local/bin",
	"3.14159 2,718 1e-6 -42 +7 100% $19.99 \u20ac5 \u00a33 \u00a5100",
	"Phone: (555) 123-4567, ISBN 978-3-16-148410-0",
	"2023-01-15T10:30:00Z",
	"1st 2nd 3rd 4th 21st",
	"\u00bd \u00bc \u00be \u2153 fractions and x\u00b2 y\u00b3",
	"\u2460 \u2461 circled, \u2160 \u2161 roman, \u2122 \u00a9 \u00ae",
	"\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 letters \uff11\uff12\uff13",
	"\ufb01ne \ufb02ow ligatures",
	"\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
	"\u4f60\u597d\uff0c\u4e16\u754c",
	"\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
	"\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
	"\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
	"\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
	"\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
	"\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
	"emoji \U0001f600\U0001f44d\U0001f3fd and \u2764\ufe0f",
	"Sch\u00f6ne Gr\u00fc\u00dfe aus M\u00fcnchen!",
	"C'est d\u00e9j\u00e0 l'\u00e9t\u00e9, o\u00f9 est le ch\u00e2teau ?",
	"\u00bfQu\u00e9 tal? \u00a1Muy bien!",
	"S\u00e3o Paulo, Bras\u00edlia, Cura\u00e7ao",
	"Tr\u01b0\u1eddng \u0111\u1ea1i h\u1ecdc",
	"<br /><br />HTML tags &amp; entities &lt;b&gt;",
	"<extra_id> is not a sentinel, nor is <extra_id_100> or <extra id_0>",
	"{\"json\": [1, 2, 3], \"key\": null}",
	"snake_case and camelCase and kebab-case and SCREAMING_CASE",
	"....!!!???,,,;;;:::",
	"a-b_c.d/e\\f|g~h^i",
	"#hashtag @mention $CASH",
	"(parentheses) [brackets] {braces}",
	"the quick brown fox jumps over the lazy dog",
	"THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
	"ThE qUiCk BrOwN fOx",
	"Supercalifragilisticexpialidocious antidisestablishmentarianism",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"\u2581 a literal lower one eighth block \u2581\u2581 and \u2581x",
	"question: What is the capital of France? context: Paris is the capital.",
	"cb premise: It was raining. hypothesis: The ground is wet.",
	"sst2 sentence: it 's a charming and often affecting journey . ",
	"\ufffd replacement character",
	"x",
	"X",
	"0",
	".",
	"\u00e9",
	"\u3000\u3000full-width spaces around\u3000\u3000",
}

func main() {
	out := flag.String("o", "testdata/spm_golden.jsonl", "golden file to write")
	tokDir := flag.String("tokenizer", os.Getenv("SHLPT_TOKENIZER"), "folder with tokenizer.json and spiece.model")
	dataDir := flag.String("data", os.Getenv("SHLPT_DATA"), "task-data root")
	perFile := flag.Int("per-file", 12, "sentences sampled from each data file")
	flag.Parse()
	if *tokDir == "" || *dataDir == "" {
		log.Fatal("set SHLPT_TOKENIZER and SHLPT_DATA, or pass -tokenizer and -data")
	}

	var cases []Case
	seen := map[string]bool{}
	addCase := func(src, text string) {
		if seen[text] || !usable(text) {
			return
		}
		seen[text] = true
		cases = append(cases, Case{Src: src, Text: text})
	}
	for _, s := range edgeCases {
		addCase("edge", s)
	}
	files, err := dataFiles(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range files {
		texts, err := extract(f)
		if err != nil {
			log.Fatalf("%s: %v", f, err)
		}
		rel, _ := filepath.Rel(*dataDir, f)
		for _, s := range sample(texts, *perFile) {
			addCase(rel, s)
		}
	}

	texts := make([]string, len(cases))
	for i, c := range cases {
		texts[i] = c.Text
	}
	ids, err := SPMEncode(filepath.Join(*tokDir, "spiece.model"), texts)
	if err != nil {
		log.Fatal(err)
	}
	for i := range cases {
		cases[i].IDs = append(ids[i], 1)
	}

	var buf bytes.Buffer
	for _, c := range cases {
		line, err := json.Marshal(c)
		if err != nil {
			log.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d cases (%d hand-made) to %s\n", len(cases), len(edgeCases), *out)
	report(*tokDir, cases)
}

// usable keeps texts that spm_encode can take as one line and whose ids
// SentencePiece and the HF tokenizer define the same way: no newline, valid
// UTF-8, and no added token (HF encodes "</s>" or "<extra_id_0>" in text as
// one id; SentencePiece spells it out).
func usable(s string) bool {
	if strings.ContainsAny(s, "\n") || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return false
	}
	for _, tok := range []string{"</s>", "<pad>", "<unk>", "<extra_id_"} {
		if strings.Contains(s, tok) && !strings.HasPrefix(s, "<extra_id> is not") {
			return false
		}
	}
	return true
}

// SPMEncode runs spm_encode on texts (one per line) and returns the ids.
func SPMEncode(model string, texts []string) ([][]int, error) {
	cmd := exec.Command("spm_encode", "--model="+model, "--output_format=id")
	cmd.Stdin = strings.NewReader(strings.Join(texts, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("spm_encode: %v: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(string(outb), "\n"), "\n")
	if len(texts) == 0 {
		lines = nil
	}
	if len(lines) != len(texts) {
		return nil, fmt.Errorf("spm_encode returned %d lines for %d texts", len(lines), len(texts))
	}
	out := make([][]int, len(lines))
	for i, l := range lines {
		out[i] = []int{}
		for _, f := range strings.Fields(l) {
			v, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("spm_encode line %d: %q", i+1, l)
			}
			out[i] = append(out[i], v)
		}
	}
	return out, nil
}

// dataFiles lists the text files of the data root in a fixed order.
func dataFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch filepath.Ext(path) {
		case ".json", ".jsonl", ".tsv", ".csv", ".txt":
			base := filepath.Base(path)
			if base == "labels.json" || strings.HasPrefix(base, "SOURCE") || strings.HasPrefix(base, "LICENSE") {
				return nil
			}
			// One seed of the few-shot splits is enough.
			if strings.Contains(path, "lfpt5") && !strings.Contains(path, "0_42") {
				return nil
			}
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// extract returns the text fields of a data file, split into lines.
func extract(path string) ([]string, error) {
	raw, err := limitio.ReadFile(path, 1<<30, "a data file")
	if err != nil {
		return nil, err
	}
	var fields []string
	switch filepath.Ext(path) {
	case ".json":
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		walk(v, &fields)
	case ".jsonl":
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var v any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				return nil, err
			}
			walk(v, &fields)
		}
	case ".csv":
		r := csv.NewReader(bytes.NewReader(raw))
		r.FieldsPerRecord = -1
		recs, err := r.ReadAll()
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			fields = append(fields, rec...)
		}
	default: // .tsv, .txt: tab-separated
		for _, line := range strings.Split(string(raw), "\n") {
			fields = append(fields, strings.Split(line, "\t")...)
		}
	}
	var out []string
	for _, f := range fields {
		for _, line := range strings.Split(f, "\n") {
			if len(strings.TrimSpace(line)) >= 2 {
				out = append(out, line)
			}
		}
	}
	return out, nil
}

// walk collects the string values of a JSON value, maps in key order.
func walk(v any, out *[]string) {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
	case []any:
		for _, e := range v {
			walk(e, out)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walk(v[k], out)
		}
	}
}

// sample picks n texts spread evenly over texts, preferring ones of at most
// 1000 bytes, plus one long text when there is one.
func sample(texts []string, n int) []string {
	var short, long []string
	for _, t := range texts {
		if len(t) <= 1000 {
			short = append(short, t)
		} else if len(t) <= 6000 {
			long = append(long, t)
		}
	}
	var out []string
	if len(short) > 0 {
		for i := 0; i < n; i++ {
			out = append(out, short[i*len(short)/n])
		}
	}
	if len(long) > 0 {
		out = append(out, long[len(long)/2])
	}
	return out
}

// report prints agreement with SentencePiece for this package and for
// sugarme's own pipeline, and this package's speed.
func report(dir string, cases []Case) {
	tk, err := tokenizer.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	texts := make([]string, len(cases))
	for i, c := range cases {
		texts[i] = c.Text
	}
	agree := 0
	for _, c := range cases {
		ids, err := tk.Encode(c.Text)
		if err == nil && equal(ids, c.IDs) {
			agree++
		} else {
			fmt.Printf("  differs: %q\n    spm  %v\n    ours %v\n", c.Text, c.IDs, ids)
		}
	}
	fmt.Printf("this package: %d/%d cases equal SentencePiece\n", agree, len(cases))

	start := time.Now()
	rounds, nbytes := 0, 0
	for time.Since(start) < time.Second {
		for _, s := range texts {
			tk.Encode(s)
			nbytes += len(s)
		}
		rounds++
	}
	el := time.Since(start).Seconds()
	fmt.Printf("speed, one goroutine: %.0f lines/s, %.1f MB/s (mean line %d bytes)\n",
		float64(rounds*len(texts))/el, float64(nbytes)/el/1e6, nbytes/(rounds*len(texts)))

	sm, err := pretrained.FromFile(filepath.Join(dir, tokenizer.FileName))
	if err != nil {
		fmt.Printf("sugarme: %v\n", err)
		return
	}
	agree, panics := 0, 0
	for _, c := range cases {
		func() {
			defer func() {
				if recover() != nil {
					panics++
				}
			}()
			en, err := sm.EncodeSingle(c.Text, true)
			if err == nil && equal(en.Ids, c.IDs) {
				agree++
			}
		}()
	}
	fmt.Printf("sugarme v0.3.0 alone: %d/%d cases equal SentencePiece (%d panicked)\n", agree, len(cases), panics)
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
