package tasks

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// want is one expected example: input, target and line.
type want struct {
	input, target string
	line          int
}

func readString(t *testing.T, task string, f Format, text string, opts ReadOptions) ([]Example, *FileReport, error) {
	t.Helper()
	tk, err := Lookup(task)
	if err != nil {
		t.Fatal(err)
	}
	return Read(tk, f, "in.txt", strings.NewReader(text), opts)
}

// Well-formed inputs, hand-written to hit each format's edge cases.
func TestReadGood(t *testing.T) {
	for _, tc := range []struct {
		name, task string
		format     Format
		text       string
		want       []want
		dropped    int
	}{
		{
			name: "csv quotes, commas and newlines", task: "ag", format: ZhangCSV,
			text: "\"3\",\"He said \"\"hi\"\", then\",\"line one\nline two, more\"\n\"1\",plain,\"\"\n",
			want: []want{
				{"title: He said \"hi\", then content: line one\nline two, more ", "business", 1},
				{"title: plain content: None ", "world", 3},
			},
		},
		{
			name: "csv with byte-order mark and CRLF", task: "yelp", format: ZhangCSV,
			text: "\xEF\xBB\xBF5,\"great\"\r\n1,awful\r\n",
			want: []want{{"content: great ", "wonderful", 1}, {"content: awful ", "terrible", 2}},
		},
		{
			name: "csv yahoo, missing field prints None", task: "yahoo", format: ZhangCSV,
			text: "2,\"why?\",,\"because\"\n",
			want: []want{{"question_title: why? question_content: None best_answer: because ", "science", 1}},
		},
		{
			name: "tsv ragged row and unquoted quotes", task: "rte", format: GLUETSV,
			text: "index\tsentence1\tsentence2\tlabel\n" +
				"0\t\"Quoted start\tThe \"film\" was shot.\t\tnot_entailment\n" +
				"1\t\tempty first\tentailment\n\n",
			want: []want{
				{"sentence1: \"Quoted start sentence2: The \"film\" was shot. ", "not_entailment", 2},
				{"sentence1:  sentence2: empty first ", "entailment", 3},
			},
		},
		{
			name: "tsv sst2 class numbers", task: "sst2", format: GLUETSV,
			text: "sentence\tlabel\nit 's fine \t1\nbad \t0\n",
			want: []want{{"sentence: it 's fine  ", "positive", 2}, {"sentence: bad  ", "negative", 3}},
		},
		{
			name: "tsv mnli drops label -", task: "mnli", format: GLUETSV,
			text: "index\tsentence1\tsentence2\tgold_label\n0\tA\tB\tneutral\n1\tC\tD\t-\n",
			want: []want{{"premise: A hypothesis: B ", "neutral", 2}}, dropped: 1,
		},
		{
			name: "jsonl cb, blank lines", task: "cb", format: SuperGLUEJSONL,
			text: `{"premise": "He \"said\"\nso.", "hypothesis": "", "label": "neutral", "idx": 0}` + "\n\n" +
				`{"premise": "P", "hypothesis": "H", "label": "contradiction"}`,
			want: []want{{"premise: He \"said\"\nso. hypothesis:  ", "neutral", 1}, {"premise: P hypothesis: H ", "contradiction", 3}},
		},
		{
			name: "jsonl wic numbers and booleans", task: "wic", format: SuperGLUEJSONL,
			text: `{"word": "run", "sentence1": "Run.", "sentence2": "Ran.", "start1": 0, "end1": 3, "start2": 0, "end2": 3, "label": true}`,
			want: []want{{"start1: 0 end1: 3 sentence1: Run. start2: 0 end2: 3 sentence2: Ran. word: run ", "true", 1}},
		},
		{
			name: "jsonl copa and qqp class numbers", task: "copa", format: SuperGLUEJSONL,
			text: `{"premise": "P", "choice1": "A", "choice2": "B", "question": "cause", "label": 1}`,
			want: []want{{"choice1: A choice2: B premise: P question: cause ", "true", 1}},
		},
		{
			name: "jsonl qqp", task: "qqp", format: SuperGLUEJSONL,
			text: `{"text1": "Q1?", "text2": "Q2?", "label": 0}`,
			want: []want{{"question1: Q1? question2: Q2? ", "not_duplicate", 1}},
		},
		{
			name: "imdb json list", task: "imdb", format: IMDBJSON,
			text: "[\n{\"label\": \"Good\", \"sentence\": \"Fine.\"},\n  {\"sentence\": \"\", \"label\": \"Bad\"}\n]\n",
			want: []want{{"sentence: Fine. ", "positive", 2}, {"sentence:  ", "negative", 3}},
		},
		{
			name: "olora verbatim and aliases", task: "ag", format: OLoRAJSON,
			text: `[{"label": "Science or Technology", "sentence": "Title: T\nText: X\n"}, {"label": "World", "sentence": "W"}]`,
			want: []want{{"Title: T\nText: X\n", "science", 1}, {"W", "world", 1}},
		},
		{
			name: "olora dbpedia spaced labels", task: "dbpedia", format: OLoRAJSON,
			text: `[{"label": "Educational Institution", "sentence": "S"}]`,
			want: []want{{"S", "educationalinstitution", 1}},
		},
		{
			name: "olora mnli drops label -", task: "mnli", format: OLoRAJSON,
			text: `[{"label": "-", "sentence": "x"}, {"label": "entailment", "sentence": "y"}]`,
			want: []want{{"y", "entailment", 1}}, dropped: 1,
		},
		{
			name: "olora amazon stars", task: "amazon", format: OLoRAJSON,
			text: `[{"label": "very negative", "sentence": "a"}, {"label": "neutral", "sentence": "b"}]`,
			want: []want{{"a", "terrible", 1}, {"b", "middle", 1}},
		},
		{
			name: "lfpt5 lines", task: "dbpedia", format: LFPT5Text,
			text: "Some player. \tthlete\n\n Village text\tvillage\n",
			want: []want{{"Some player. ", "athlete", 1}, {"Village text", "village", 3}},
		},
		{
			name: "lfpt5 yahoo capitals", task: "yahoo", format: LFPT5Text,
			text: "q a\\nb\tentertainment and Music\n",
			want: []want{{"q a\\nb", "entertainment and music", 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exs, rep, err := readString(t, tc.task, tc.format, tc.text, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, e := range exs {
				got = append(got, want{e.Input, e.Target, e.Pos.Line})
				if e.Pos.File != "in.txt" {
					t.Errorf("position file %q", e.Pos.File)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if rep.Dropped != tc.dropped || rep.Examples != len(tc.want) || rep.Rows != len(tc.want)+tc.dropped {
				t.Errorf("report %+v", rep)
			}
		})
	}
}

// Malformed inputs: each is an error naming the file and line and saying
// what was expected; with SkipMalformed the row is counted instead.
func TestReadBad(t *testing.T) {
	for _, tc := range []struct {
		name, task string
		format     Format
		text       string
		errHas     []string // substrings of the error
		fatal      bool     // a file-level error that skipping does not help
		skipped    int      // rows skipped under SkipMalformed
		kept       int      // examples kept under SkipMalformed
	}{
		{"csv field count", "ag", ZhangCSV, "1,a,b\n2,a\n3,c,d\n", []string{"in.txt:2:", "row has 2 fields, expected 3 (class, title, content)"}, false, 1, 2},
		{"csv class out of range", "ag", ZhangCSV, "5,a,b\n", []string{"in.txt:1:", `unknown label "5"`, "from 1 to 4"}, false, 1, 0},
		{"csv class zero", "ag", ZhangCSV, "1,a,b\n0,a,b\n", []string{"in.txt:2:", `unknown label "0"`}, false, 1, 1},
		{"csv bare quote", "ag", ZhangCSV, "1,a,b\n2,x\"y,c\n3,a,b\n", []string{"in.txt:2:", "bare \""}, false, 1, 2},
		{"csv unterminated quote", "ag", ZhangCSV, "1,a,b\n2,\"open,c\n", []string{"in.txt:2:"}, false, 1, 1},
		{"csv invalid utf-8", "ag", ZhangCSV, "1,a\xff,b\n", []string{"in.txt:1:", "UTF-8"}, false, 1, 0},
		{"tsv short row", "rte", GLUETSV, "index\tsentence1\tsentence2\tlabel\n0\ta\tentailment\n", []string{"in.txt:2:", "row has 3 fields, header has 4"}, false, 1, 0},
		{"tsv extra non-empty field", "rte", GLUETSV, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tx\tentailment\n1\ta\tb\tentailment\n", []string{"in.txt:2:", "row has 5 fields"}, false, 1, 1},
		{"tsv unknown label", "rte", GLUETSV, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tcontradiction\n", []string{"in.txt:2:", `unknown label "contradiction"`, `"entailment", "not_entailment"`}, false, 1, 0},
		{"tsv missing column", "mnli", GLUETSV, "sentence1\tsentence2\tlabel\n", []string{"in.txt:", `header has no column "gold_label"`}, true, 0, 0},
		{"tsv empty file", "sst2", GLUETSV, "", []string{"in.txt:", "header"}, true, 0, 0},
		{"jsonl bad json", "cb", SuperGLUEJSONL, `{"premise": "a", "hypothesis": "b", "label": "neutral"}` + "\n{\"premise\": \n", []string{"in.txt:2:", "invalid JSON"}, false, 1, 1},
		{"jsonl missing field", "cb", SuperGLUEJSONL, `{"premise": "a", "label": "neutral"}`, []string{"in.txt:1:", `missing field "hypothesis"`}, false, 1, 0},
		{"jsonl missing label", "cb", SuperGLUEJSONL, `{"premise": "a", "hypothesis": "b"}`, []string{"in.txt:1:", `missing field "label"`}, false, 1, 0},
		{"jsonl unknown label", "cb", SuperGLUEJSONL, `{"premise": "a", "hypothesis": "b", "label": "Entailment"}`, []string{"in.txt:1:", `unknown label "Entailment"`, `expected one of "entailment", "contradiction", "neutral"`}, false, 1, 0},
		{"jsonl bool expected", "boolq", SuperGLUEJSONL, `{"passage": "a", "question": "b", "label": 1}`, []string{"in.txt:1:", "expected false or true"}, false, 1, 0},
		{"jsonl not an object", "cb", SuperGLUEJSONL, "[1, 2]\n", []string{"in.txt:1:", "invalid JSON"}, false, 1, 0},
		{"jsonl field is a list", "cb", SuperGLUEJSONL, `{"premise": ["a"], "hypothesis": "b", "label": "neutral"}`, []string{"in.txt:1:", `field "premise"`}, false, 1, 0},
		{"multirc missing answer text", "multirc", SuperGLUEJSONL, `{"passage": {"text": "P", "questions": [{"question": "Q", "answers": [{"label": 1}]}]}}`, []string{"in.txt:1:", `question 0 answer 0: missing field "text"`}, false, 1, 0},
		{"multirc no passage", "multirc", SuperGLUEJSONL, `{"idx": 0}`, []string{"in.txt:1:", "passage.text"}, false, 1, 0},
		{"imdb not a list", "imdb", IMDBJSON, `{"sentence": "a", "label": "Good"}`, []string{"in.txt:", "expected a JSON list"}, true, 0, 0},
		{"imdb unknown label", "imdb", IMDBJSON, "[\n{\"sentence\": \"a\", \"label\": \"Good\"},\n{\"sentence\": \"a\", \"label\": \"Neutral\"}]", []string{"in.txt:3:", `unknown label "Neutral"`, `"Good" or "Bad"`}, false, 1, 1},
		{"imdb label not a string", "imdb", IMDBJSON, `[{"sentence": "a", "label": 1}]`, []string{"in.txt:1:", `"label" must be a string`}, false, 1, 0},
		{"imdb missing sentence", "imdb", IMDBJSON, `[{"label": "Good"}]`, []string{"in.txt:1:", `missing field "sentence"`}, false, 1, 0},
		{"imdb truncated", "imdb", IMDBJSON, "[{\"sentence\": \"a\", \"label\": \"Good\"},\n", []string{"in.txt:"}, true, 0, 0},
		{"imdb trailing data", "imdb", IMDBJSON, `[] []`, []string{"in.txt:", "after the list"}, true, 0, 0},
		{"olora unknown label", "qqp", OLoRAJSON, `[{"sentence": "a", "label": "Maybe"}]`, []string{"in.txt:1:", `unknown label "Maybe"`, "not_duplicate", "false→not_duplicate"}, false, 1, 0},
		{"lfpt5 three fields", "ag", LFPT5Text, "a\tworld\nb\tc\tworld\n", []string{"in.txt:2:", "3 tab-separated fields"}, false, 1, 1},
		{"lfpt5 no tab", "ag", LFPT5Text, "just text\n", []string{"in.txt:1:", "expected 2"}, false, 1, 0},
		{"squad answerable without answers", "squad", SQuADJSON, `{"data": [{"paragraphs": [{"context": "C", "qas": [{"id": "q1", "question": "Q", "answers": [], "is_impossible": false}]}]}]}`, []string{"in.txt:", `id "q1"`, "answerable question without answers"}, false, 1, 0},
		{"squad wrong type", "squad", SQuADJSON, "{\"data\": [\n{\"paragraphs\": [{\"context\": 5}]}]}", []string{"in.txt:2:", "context"}, true, 0, 0},
		{"squad not squad", "squad", SQuADJSON, `{"version": "v2.0"}`, []string{"in.txt:", "SQuAD v2"}, true, 0, 0},
		{"squad syntax", "squad", SQuADJSON, "{\n\"data\": [}", []string{"in.txt:2:", "invalid JSON"}, true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readString(t, tc.task, tc.format, tc.text, ReadOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			var re *RowError
			if !tc.fatal && !errors.As(err, &re) {
				t.Errorf("error %T is not a *RowError", err)
			}
			exs, rep, err := readString(t, tc.task, tc.format, tc.text, ReadOptions{SkipMalformed: true})
			if tc.fatal {
				if err == nil {
					t.Error("skipping made a file-level error pass")
				}
				return
			}
			if err != nil {
				t.Fatalf("with SkipMalformed: %v", err)
			}
			if rep.Skipped != tc.skipped || len(exs) != tc.kept || len(rep.SkippedErrors) != tc.skipped {
				t.Errorf("with SkipMalformed: skipped %d (%v), kept %d; want %d, %d", rep.Skipped, rep.SkippedErrors, len(exs), tc.skipped, tc.kept)
			}
		})
	}
}

func TestReadFormatMismatch(t *testing.T) {
	_, _, err := readString(t, "cb", ZhangCSV, "1,a,b\n", ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "expected superglue-jsonl") {
		t.Errorf("error %v", err)
	}
	_, _, err = readString(t, "squad", OLoRAJSON, "[]", ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot be read from olora-json") {
		t.Errorf("error %v", err)
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "zhang-csv") {
		t.Errorf("ParseFormat(xml) error %v", err)
	}
}

const multiRCSample = `{"idx": 0, "passage": {"text": "P.", "questions": [` +
	`{"question": "Q1?", "answers": [{"text": "A1", "label": 1}, {"text": "A2", "label": 0}], "idx": 0},` +
	`{"question": "Q2?", "answers": [{"text": "A3", "label": 0}], "idx": 1}]}}` + "\n"

func TestReadMultiRC(t *testing.T) {
	exs, _, err := readString(t, "multirc", SuperGLUEJSONL, multiRCSample+multiRCSample, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range exs {
		got = append(got, e.Group+" "+e.Target+" "+e.Input)
	}
	wantOne := []string{
		"1/0 true question: Q1? answer: A1 paragraph: P. ",
		"1/0 false question: Q1? answer: A2 paragraph: P. ",
		"1/1 false question: Q2? answer: A3 paragraph: P. ",
		"2/0 true question: Q1? answer: A1 paragraph: P. ",
		"2/0 false question: Q1? answer: A2 paragraph: P. ",
		"2/1 false question: Q2? answer: A3 paragraph: P. ",
	}
	if !reflect.DeepEqual(got, wantOne) {
		t.Errorf("one block per option:\n got %q\nwant %q", got, wantOne)
	}

	// The reference's accumulation: each option repeats its passage's
	// earlier blocks, starting afresh with each passage.
	exs, _, err = readString(t, "multirc", SuperGLUEJSONL, multiRCSample+multiRCSample, ReadOptions{MultiRCAccumulate: true})
	if err != nil {
		t.Fatal(err)
	}
	b1 := "question: Q1? answer: A1 paragraph: P. "
	b2 := "question: Q1? answer: A2 paragraph: P. "
	b3 := "question: Q2? answer: A3 paragraph: P. "
	wantAcc := []string{b1, b1 + b2, b1 + b2 + b3, b1, b1 + b2, b1 + b2 + b3}
	for i, e := range exs {
		if e.Input != wantAcc[i] {
			t.Errorf("accumulated input %d = %q, want %q", i, e.Input, wantAcc[i])
		}
	}
}

func TestReadSQuAD(t *testing.T) {
	text := `{"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
		{"id": "a", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}, {"text": "in France", "answer_start": 9}], "is_impossible": false},
		{"id": "b", "question": "Where is Rome?", "answers": [], "plausible_answers": [{"text": "France", "answer_start": 12}], "is_impossible": true}]}]}]}`
	exs, rep, err := readString(t, "squad", SQuADJSON, text, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 2 {
		t.Fatalf("%d examples", len(exs))
	}
	a, b := exs[0], exs[1]
	if a.Input != "question: Where is Paris? context: Paris is in France." || a.Target != "France" ||
		!reflect.DeepEqual(a.Answers, []string{"France", "in France"}) || a.Class != -1 || a.Group != "a" {
		t.Errorf("answerable: %+v", a)
	}
	if b.Target != "" || len(b.Answers) != 0 || b.Group != "b" {
		t.Errorf("unanswerable: %+v", b)
	}
	if !reflect.DeepEqual(rep.PerClass, []int{1, 1}) {
		t.Errorf("answerable/unanswerable counts %v", rep.PerClass)
	}
}

func TestReadFileMissing(t *testing.T) {
	tk, _ := Lookup("cb")
	_, _, err := ReadFile(tk, SuperGLUEJSONL, "/nonexistent/CB/train.jsonl", ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/CB/train.jsonl") {
		t.Errorf("error %v", err)
	}
}
