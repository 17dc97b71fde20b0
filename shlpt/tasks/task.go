package tasks

import (
	"fmt"
	"sort"
	"strings"
)

// Task describes one task of the benchmarks: where its files live in the
// SHLPT dataset layout, how they are written, how a record becomes an input
// text, and which words are its targets. Tasks come from Lookup and must not be
// modified.
type Task struct {
	// Name is the canonical name used in task sequences ("ag", "cb", ...).
	Name string
	// Aliases are other names Lookup accepts ("ag_news", "dbpedia_14", ...).
	Aliases []string
	// Dir is the task's folder in the SHLPT dataset layout.
	Dir string
	// Format is the format of the task's files in the SHLPT layout.
	Format Format
	// Labels are the label words (verbalizer): Labels[c] is the target text of
	// class c. Empty for question answering.
	Labels []string
	// QA marks extractive question answering (SQuAD): free-text targets,
	// sampled without classes, scored by token F1.
	QA bool
	// TargetLen is the number of target tokens including </s> that targets
	// are padded to; a longer target is an error (the reference asserts it).
	TargetLen int

	template   template   // input text over the native field names
	columns    []string   // zhang-csv: names of the columns after the class
	labelField string     // glue-tsv: header name of the label column
	codec      labelCodec // how native files write the label
	dropLabels []string   // native labels that mark rows to drop, not errors
	// aliases maps label words of other sources (olora, lfpt5), compared by
	// labelKey, to this task's label words.
	aliases map[string]string
}

// Default lengths of the reference configuration.
const (
	// MaxInputLen is the input length in tokens, including </s>.
	MaxInputLen = 256
)

var (
	topics5 = []string{"terrible", "bad", "middle", "good", "wonderful"}
	// olora writes the five sentiment classes this way.
	stars5 = map[string]string{
		"very negative": "terrible", "negative": "bad", "neutral": "middle",
		"positive": "good", "very positive": "wonderful",
	}
	falseTrue = []string{"false", "true"}
)

// registry lists the 16 tasks in the order `data tasks` prints them.
var registry = []*Task{
	{
		Name: "ag", Aliases: []string{"ag_news", "agnews"}, Dir: "ag_news", Format: ZhangCSV,
		Labels:    []string{"world", "sports", "business", "science"},
		TargetLen: 2,
		columns:   []string{"title", "content"},
		template:  keys("title", "content"),
		codec:     labelIndex1,
		aliases:   map[string]string{"science or technology": "science"},
	},
	{
		Name: "amazon", Aliases: []string{"amazon_new"}, Dir: "amazon_new", Format: ZhangCSV,
		Labels: topics5, TargetLen: 2,
		columns:  []string{"title", "content"},
		template: keys("title", "content"),
		codec:    labelIndex1,
		aliases:  stars5,
	},
	{
		Name: "dbpedia", Aliases: []string{"dbpedia_14"}, Dir: "dbpedia_14", Format: ZhangCSV,
		Labels: []string{"company", "educationalinstitution", "artist", "athlete", "officeholder",
			"meanoftransportation", "building", "naturalplace", "village", "animal",
			"plant", "album", "film", "writtenwork"},
		TargetLen: 5,
		columns:   []string{"title", "content"},
		template:  keys("title", "content"),
		codec:     labelIndex1,
		// lfpt5's files spell the athlete class "thlete".
		aliases: map[string]string{"thlete": "athlete"},
	},
	{
		Name: "yahoo", Aliases: []string{"yahoo_answers_topics", "yahoo_answers"}, Dir: "yahoo_answers_topics",
		Format: ZhangCSV,
		Labels: []string{"society and culture", "science", "health", "education and reference",
			"computers and internet", "sports", "business", "entertainment and music",
			"family and relationships", "politics and government"},
		TargetLen: 5,
		columns:   []string{"question_title", "question_content", "best_answer"},
		template:  keys("question_title", "question_content", "best_answer"),
		codec:     labelIndex1,
	},
	{
		Name: "yelp", Aliases: []string{"yelp_review_full"}, Dir: "yelp", Format: ZhangCSV,
		Labels: topics5, TargetLen: 2,
		columns:  []string{"content"},
		template: keys("content"),
		codec:    labelIndex1,
		aliases:  stars5,
	},
	{
		Name: "mnli", Dir: "MNLI", Format: GLUETSV,
		Labels:     []string{"entailment", "neutral", "contradiction"},
		TargetLen:  5,
		template:   template{pieces: []piece{{"premise", "sentence1"}, {"hypothesis", "sentence2"}}},
		labelField: "gold_label",
		codec:      labelWord,
		// GLUE and olora mark pairs without a gold label with "-".
		dropLabels: []string{"-"},
	},
	{
		Name: "qqp", Dir: "QQP", Format: SuperGLUEJSONL,
		Labels:    []string{"not_duplicate", "duplicate"},
		TargetLen: 6,
		template:  template{pieces: []piece{{"question1", "text1"}, {"question2", "text2"}}},
		codec:     labelIndex0,
		aliases:   map[string]string{"false": "not_duplicate", "true": "duplicate"},
	},
	{
		Name: "rte", Dir: "RTE", Format: GLUETSV,
		Labels:     []string{"entailment", "not_entailment"},
		TargetLen:  6,
		template:   keys("sentence1", "sentence2"),
		labelField: "label",
		codec:      labelWord,
		aliases:    map[string]string{"contradiction": "not_entailment"},
	},
	{
		Name: "sst2", Aliases: []string{"sst-2", "sst"}, Dir: "SST-2", Format: GLUETSV,
		Labels:     []string{"negative", "positive"},
		TargetLen:  2,
		template:   keys("sentence"),
		labelField: "label",
		codec:      labelIndex0,
		aliases:    map[string]string{"bad": "negative", "good": "positive"},
	},
	{
		Name: "wic", Dir: "WiC", Format: SuperGLUEJSONL,
		Labels: falseTrue, TargetLen: 2,
		template: keys("start1", "end1", "sentence1", "start2", "end2", "sentence2", "word"),
		codec:    labelBool,
	},
	{
		Name: "cb", Dir: "CB", Format: SuperGLUEJSONL,
		Labels:    []string{"entailment", "contradiction", "neutral"},
		TargetLen: 5,
		template:  keys("premise", "hypothesis"),
		codec:     labelWord,
	},
	{
		Name: "copa", Dir: "COPA", Format: SuperGLUEJSONL,
		Labels: falseTrue, TargetLen: 2,
		template: keys("choice1", "choice2", "premise", "question"),
		codec:    labelIndex0,
		// olora writes the two choices as A and B.
		aliases: map[string]string{"a": "false", "b": "true"},
	},
	{
		Name: "boolq", Aliases: []string{"boolqa"}, Dir: "BoolQ", Format: SuperGLUEJSONL,
		Labels: falseTrue, TargetLen: 2,
		template: keys("passage", "question"),
		codec:    labelBool,
	},
	{
		Name: "multirc", Dir: "MultiRC", Format: SuperGLUEJSONL,
		Labels: falseTrue, TargetLen: 5,
		template: keys("question", "answer", "paragraph"),
		codec:    labelIndex0,
	},
	{
		Name: "imdb", Dir: "IMDB", Format: IMDBJSON,
		Labels: []string{"negative", "positive"}, TargetLen: 2,
		template: keys("sentence"),
		codec:    labelGoodBad,
		aliases:  map[string]string{"bad": "negative", "good": "positive"},
	},
	{
		Name: "squad", Aliases: []string{"squad_v2", "squad2"}, Dir: "SQUAD", Format: SQuADJSON,
		QA: true, TargetLen: 76,
		// The reference writes no space after the context.
		template: template{pieces: []piece{{"question", "question"}, {"context", "context"}}, noTrailingSpace: true},
	},
}

// byName maps canonical names and aliases, lower-cased, to tasks.
var byName = func() map[string]*Task {
	m := map[string]*Task{}
	for _, t := range registry {
		for _, n := range append([]string{t.Name, strings.ToLower(t.Dir)}, t.Aliases...) {
			if old, dup := m[n]; dup && old != t {
				panic("tasks: name " + n + " used twice")
			}
			m[n] = t
		}
	}
	return m
}()

// Lookup returns the task with the given name or alias (case-insensitive).
func Lookup(name string) (*Task, error) {
	if t, ok := byName[strings.ToLower(strings.TrimSpace(name))]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("unknown task %q (expected one of %s)", name, strings.Join(Names(), ", "))
}

// All returns every task in a fixed order.
func All() []*Task { return append([]*Task(nil), registry...) }

// Names returns the canonical task names in a fixed order.
func Names() []string {
	names := make([]string, len(registry))
	for i, t := range registry {
		names[i] = t.Name
	}
	return names
}

// Template returns the input template with {field} placeholders, as the
// reference writes it for the task's native files, e.g. "premise: {premise} ".
func (t *Task) Template() string { return t.template.String() }

// Fields are the record fields the input template reads, in its order.
func (t *Task) Fields() []string { return t.template.fields() }

// Input fills the input template with a record's fields, as reading the
// task's native files does; a missing field is an error naming it.
func (t *Task) Input(fields map[string]string) (string, error) { return t.template.apply(fields) }

// Class returns the class index of a label word, or -1.
func (t *Task) Class(word string) int {
	for c, w := range t.Labels {
		if w == word {
			return c
		}
	}
	return -1
}

// aliasList returns the foreign label words this task accepts, sorted.
func (t *Task) aliasList() []string {
	var a []string
	for k, v := range t.aliases {
		a = append(a, k+"→"+v)
	}
	sort.Strings(a)
	return a
}
