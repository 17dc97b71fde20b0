package tasks

import (
	"bytes"
	"testing"
)

// fuzzRead reads data as a file of format f for the task chosen by the
// first byte among names, with and without SkipMalformed, and checks what a
// successful read promises. Any panic fails the fuzzer.
func fuzzRead(t *testing.T, f Format, names []string, data []byte) {
	if len(data) == 0 {
		return
	}
	tk, err := Lookup(names[int(data[0])%len(names)])
	if err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		exs, rep, err := Read(tk, f, "fuzz", bytes.NewReader(data[1:]), ReadOptions{SkipMalformed: skip, MultiRCAccumulate: skip})
		if err != nil {
			continue
		}
		if rep.Examples != len(exs) || rep.Examples+rep.Dropped > rep.Rows {
			t.Fatalf("report %+v for %d examples", rep, len(exs))
		}
		for _, e := range exs {
			switch {
			case tk.QA:
				if e.Class != -1 || (len(e.Answers) > 0 && e.Target != e.Answers[0]) || (len(e.Answers) == 0 && e.Target != "") {
					t.Fatalf("QA example %+v", e)
				}
			case e.Class < 0 || e.Class >= len(tk.Labels) || e.Target != tk.Labels[e.Class]:
				t.Fatalf("example %+v: class and target disagree", e)
			}
		}
	}
}

func FuzzZhangCSV(f *testing.F) {
	for _, s := range []string{
		"\x00\"3\",\"He said \"\"hi\"\"\",\"a\nb, c\"\n1,x,\n",
		"\x01\"2\",\"q\",,\"a\"\r\n",
		"\x02" + `5,"great"` + "\n",
		"\x00" + `1,a"b,c`,
		"\x00\xEF\xBB\xBF4,t,c\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, ZhangCSV, []string{"ag", "yahoo", "yelp"}, data) })
}

func FuzzGLUETSV(f *testing.F) {
	for _, s := range []string{
		"\x00index\tsentence1\tsentence2\tlabel\n0\t\"a\tb\t\tnot_entailment\n1\tc\td\tentailment\n",
		"\x01sentence\tlabel\nfine \t1\n\nbad\t0\r\n",
		"\x02index\tsentence1\tsentence2\tgold_label\n0\tA\tB\t-\n1\tA\tB\tneutral\n",
		"\x00index\tsentence1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, GLUETSV, []string{"rte", "sst2", "mnli"}, data) })
}

func FuzzSuperGLUE(f *testing.F) {
	for _, s := range []string{
		"\x00" + `{"premise": "a \"b\"", "hypothesis": "", "label": "neutral"}` + "\n\n",
		"\x01" + `{"word": "w", "sentence1": "s", "sentence2": "t", "start1": 0, "end1": 1, "start2": 2, "end2": 3, "label": false}`,
		"\x02" + `{"premise": "p", "choice1": "a", "choice2": "b", "question": "effect", "label": 1}`,
		"\x03" + `{"passage": "p", "question": "q", "label": true}`,
		"\x04" + multiRCSample,
		"\x05" + `{"text1": "a", "text2": "b", "label": 0}` + "\n{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, SuperGLUEJSONL, []string{"cb", "wic", "copa", "boolq", "multirc", "qqp"}, data)
	})
}

func FuzzJSONList(f *testing.F) {
	for _, s := range []string{
		"\x00[\n{\"label\": \"Good\", \"sentence\": \"ok\"},\n{\"label\": \"Bad\", \"sentence\": \"\"}]",
		"\x01" + `[{"label": "Science or Technology", "sentence": "Title: a\nText: b"}]`,
		"\x02" + `[{"label": "-", "sentence": "x"}, {"label": "neutral", "sentence": "y"}]`,
		"\x00" + `{"label": "Good"}`,
		"\x01[1, null, {}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 0 && data[0]%3 == 0 {
			fuzzRead(t, IMDBJSON, []string{"imdb"}, data)
			return
		}
		fuzzRead(t, OLoRAJSON, []string{"imdb", "ag", "mnli"}, data)
	})
}

func FuzzLFPT5(f *testing.F) {
	for _, s := range []string{
		"\x00text one\tworld\n\n two \tsports\n",
		"\x01a player\tthlete\nx\ty\tz\n",
		"\x02q\\nb\tentertainment and Music\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, LFPT5Text, []string{"ag", "dbpedia", "yahoo"}, data) })
}

func FuzzSQuAD(f *testing.F) {
	for _, s := range []string{
		`{"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "C", "qas": [` +
			`{"id": "a", "question": "Q", "answers": [{"text": "C", "answer_start": 0}], "is_impossible": false},` +
			`{"id": "b", "question": "R", "answers": [], "is_impossible": true}]}]}]}`,
		`{"data": [{"paragraphs": [{"context": "C", "qas": [{"id": "c", "question": "Q", "answers": []}]}]}]}`,
		`{"data": null}`,
		`[]`,
	} {
		f.Add([]byte("\x00" + s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, SQuADJSON, []string{"squad"}, data) })
}
