package tasks

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"ag", "ag"}, {"ag_news", "ag"}, {"AG_NEWS", "ag"}, {"dbpedia_14", "dbpedia"},
		{"yahoo_answers_topics", "yahoo"}, {"amazon_new", "amazon"}, {"sst-2", "sst2"},
		{"SST-2", "sst2"}, {"squad_v2", "squad"}, {"MultiRC", "multirc"}, {" cb ", "cb"},
	} {
		got, err := Lookup(tc.name)
		if err != nil || got.Name != tc.want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	_, err := Lookup("cola")
	if err == nil || !strings.Contains(err.Error(), `unknown task "cola"`) || !strings.Contains(err.Error(), "multirc") {
		t.Errorf("Lookup(cola) error = %v; want one naming the expected tasks", err)
	}
}

func TestRegistry(t *testing.T) {
	if got := len(Names()); got != 16 {
		t.Fatalf("%d tasks, want 16", got)
	}
	for _, tk := range All() {
		if tk.TargetLen <= 0 || tk.Dir == "" || tk.Format == "" {
			t.Errorf("%s: incomplete entry %+v", tk.Name, tk)
		}
		if tk.QA != (len(tk.Labels) == 0) {
			t.Errorf("%s: QA is %v but has %d labels", tk.Name, tk.QA, len(tk.Labels))
		}
		// Alias keys must not collide, or the match would depend on map order.
		seen := map[string]string{}
		for _, w := range tk.Labels {
			seen[labelKey(w)] = w
		}
		for from, to := range tk.aliases {
			if tk.Class(to) < 0 {
				t.Errorf("%s: alias %q maps to unknown label %q", tk.Name, from, to)
			}
			if old, dup := seen[labelKey(from)]; dup {
				t.Errorf("%s: alias %q collides with %q", tk.Name, from, old)
			}
			seen[labelKey(from)] = from
		}
	}
}

// The templates and target lengths of the reference's tables (§1.2, §1.3).
func TestTemplates(t *testing.T) {
	for _, tc := range []struct {
		task, template string
		targetLen      int
		labels         string
	}{
		{"ag", "title: {title} content: {content} ", 2, "world,sports,business,science"},
		{"amazon", "title: {title} content: {content} ", 2, "terrible,bad,middle,good,wonderful"},
		{"dbpedia", "title: {title} content: {content} ", 5, "company,educationalinstitution,artist,athlete,officeholder,meanoftransportation,building,naturalplace,village,animal,plant,album,film,writtenwork"},
		{"yahoo", "question_title: {question_title} question_content: {question_content} best_answer: {best_answer} ", 5,
			"society and culture,science,health,education and reference,computers and internet,sports,business,entertainment and music,family and relationships,politics and government"},
		{"yelp", "content: {content} ", 2, "terrible,bad,middle,good,wonderful"},
		{"mnli", "premise: {sentence1} hypothesis: {sentence2} ", 5, "entailment,neutral,contradiction"},
		{"rte", "sentence1: {sentence1} sentence2: {sentence2} ", 6, "entailment,not_entailment"},
		{"qqp", "question1: {text1} question2: {text2} ", 6, "not_duplicate,duplicate"},
		{"sst2", "sentence: {sentence} ", 2, "negative,positive"},
		{"imdb", "sentence: {sentence} ", 2, "negative,positive"},
		{"wic", "start1: {start1} end1: {end1} sentence1: {sentence1} start2: {start2} end2: {end2} sentence2: {sentence2} word: {word} ", 2, "false,true"},
		{"cb", "premise: {premise} hypothesis: {hypothesis} ", 5, "entailment,contradiction,neutral"},
		{"copa", "choice1: {choice1} choice2: {choice2} premise: {premise} question: {question} ", 2, "false,true"},
		{"boolq", "passage: {passage} question: {question} ", 2, "false,true"},
		{"multirc", "question: {question} answer: {answer} paragraph: {paragraph} ", 5, "false,true"},
		{"squad", "question: {question} context: {context}", 76, ""},
	} {
		tk, err := Lookup(tc.task)
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Template(); got != tc.template {
			t.Errorf("%s template = %q, want %q", tc.task, got, tc.template)
		}
		if tk.TargetLen != tc.targetLen {
			t.Errorf("%s target length = %d, want %d", tc.task, tk.TargetLen, tc.targetLen)
		}
		if got := strings.Join(tk.Labels, ","); got != tc.labels {
			t.Errorf("%s labels = %s, want %s", tc.task, got, tc.labels)
		}
	}
}

func TestSequences(t *testing.T) {
	lens := map[string]int{"order1": 4, "order2": 4, "order3": 4, "order4": 15, "order5": 15, "order6": 15, "nt1": 5, "nt2": 5, "nt3": 5}
	seqs := Sequences()
	if len(seqs) != len(lens) {
		t.Fatalf("%d sequences, want %d", len(seqs), len(lens))
	}
	for _, s := range seqs {
		if len(s.Tasks) != lens[s.Name] {
			t.Errorf("%s has %d tasks, want %d", s.Name, len(s.Tasks), lens[s.Name])
		}
		seen := map[string]bool{}
		for _, n := range s.Tasks {
			tk, err := Lookup(n)
			if err != nil || tk.Name != n {
				t.Errorf("%s: task %q is not a canonical name (%v)", s.Name, n, err)
			}
			if seen[n] {
				t.Errorf("%s: task %s twice", s.Name, n)
			}
			seen[n] = true
		}
		byRef, err := LookupSequence(s.Reference)
		if err != nil || byRef.Name != s.Name {
			t.Errorf("LookupSequence(%s) = %v, %v", s.Reference, byRef.Name, err)
		}
	}
	// The 15-task orders cover every classification task but squad.
	for _, n := range []string{"order4", "order5", "order6"} {
		s, _ := LookupSequence(n)
		if len(s.Tasks) != 15 {
			t.Errorf("%s: %d tasks", n, len(s.Tasks))
		}
	}
	s, _ := LookupSequence("scl_seq1")
	if strings.Join(s.Tasks, " ") != "dbpedia amazon yahoo ag" {
		t.Errorf("order1 = %v", s.Tasks)
	}
	s, _ = LookupSequence("dis_seq3")
	if strings.Join(s.Tasks, " ") != "multirc rte squad wic mnli" {
		t.Errorf("nt3 = %v", s.Tasks)
	}
	if _, err := LookupSequence("order7"); err == nil {
		t.Error("LookupSequence(order7) succeeded")
	}
}
