package tasks

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/shlpt-vk/shlpt-vk/internal/testenv"
)

// The shared task files, read in place: counts per file and per class.
func TestRealFiles(t *testing.T) {
	root := testenv.Data(t)
	shlpt := filepath.Join(root, "shlpt")
	for _, tc := range []struct {
		task     string
		format   Format
		path     string
		rows     int
		perClass []int // in label order
		dropped  int
	}{
		{"cb", "", "CB/train.jsonl", 250, []int{115, 119, 16}, 0},
		{"cb", "", "CB/test.jsonl", 56, []int{23, 28, 5}, 0},
		{"rte", "", "RTE/train.tsv", 2490, []int{1249, 1241}, 0},
		{"rte", "", "RTE/test.tsv", 277, []int{146, 131}, 0},
		{"copa", "", "COPA/train.jsonl", 400, []int{195, 205}, 0},
		{"copa", "", "COPA/test.jsonl", 100, []int{55, 45}, 0},
		{"wic", "", "WiC/train.jsonl", 5428, []int{2714, 2714}, 0},
		{"wic", "", "WiC/test.jsonl", 638, []int{319, 319}, 0},
		{"boolq", "", "BoolQ/test.jsonl", 3270, []int{1237, 2033}, 0},
		{"multirc", "", "MultiRC/train.jsonl", 27243, []int{15218, 12025}, 0},
		{"multirc", "", "MultiRC/test.jsonl", 4848, []int{2773, 2075}, 0},
		{"sst2", "", "SST-2/train.tsv", 67349, []int{29780, 37569}, 0},
		{"sst2", "", "SST-2/test.tsv", 872, []int{428, 444}, 0},
		{"imdb", "", "IMDB/train.json", 2000, []int{1018, 982}, 0},
		{"ag", "", "ag_news/test.csv", 7600, []int{1900, 1900, 1900, 1900}, 0},
		{"amazon", "", "amazon_new/test.csv", 7600, []int{1501, 1496, 1575, 1500, 1528}, 0},
		{"squad", "", "../squad_v2/dev-v2.0.json", 6078, []int{6078 - 3168, 3168}, 0},
		{"mnli", OLoRAJSON, "../olora/MNLI/test.json", 7600, []int{2681, 2353, 2435}, 131},
		{"qqp", OLoRAJSON, "../olora/QQP/train.json", 2000, []int{1239, 761}, 0},
		{"ag", OLoRAJSON, "../olora/agnews/train.json", 4000, []int{968, 1040, 1000, 992}, 0},
		{"dbpedia", OLoRAJSON, "../olora/dbpedia/test.json", 7600, []int{538, 519, 557, 560, 532, 543, 519, 537, 558, 534, 567, 506, 547, 583}, 0},
		{"yelp", OLoRAJSON, "../olora/yelp/train.json", 5000, []int{1036, 986, 982, 1016, 980}, 0},
		{"dbpedia", LFPT5Text, "../lfpt5/dbpedia_csv/0_42/test.txt", 1400, repeat(100, 14), 0},
		{"yahoo", LFPT5Text, "../lfpt5/yahoo_answers_csv/1_142/train.txt", 160, repeat(16, 10), 0},
		{"amazon", LFPT5Text, "../lfpt5/amazon_review_full_csv/2_242/valid.txt", 80, repeat(16, 5), 0},
		{"ag", LFPT5Text, "../lfpt5/ag_news_csv/0_42/test.txt", 400, repeat(100, 4), 0},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			tk, err := Lookup(tc.task)
			if err != nil {
				t.Fatal(err)
			}
			f := tc.format
			if f == "" {
				f = tk.Format
			}
			exs, rep, err := ReadFile(tk, f, filepath.Join(shlpt, tc.path), ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rows != tc.rows || rep.Dropped != tc.dropped || len(exs) != tc.rows-tc.dropped || rep.Skipped != 0 {
				t.Errorf("report %v; want %d rows, %d dropped", rep, tc.rows, tc.dropped)
			}
			if !reflect.DeepEqual(rep.PerClass, tc.perClass) || !reflect.DeepEqual(CountByClass(tk, exs), tc.perClass) {
				t.Errorf("per class %v, want %v", rep.PerClass, tc.perClass)
			}
		})
	}
}

func repeat(n, k int) []int {
	r := make([]int, k)
	for i := range r {
		r[i] = n
	}
	return r
}

// RTE train row 2164 has an extra empty column; its label is the last one.
func TestRealRTERaggedRow(t *testing.T) {
	root := testenv.Data(t)
	tk, _ := Lookup("rte")
	exs, _, err := ReadFile(tk, GLUETSV, filepath.Join(root, "shlpt/RTE/train.tsv"), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var e *Example
	for i := range exs {
		if exs[i].Pos.Line == 2166 { // header, then index 0 on line 2
			e = &exs[i]
		}
	}
	if e == nil {
		t.Fatal("no example from line 2166")
	}
	want := "sentence1: \"That film wasn't too successful, but then 'WarGames,' which was successful, came out right when I won the Tony for 'Brighton Beach' in 1983. sentence2: The film \"WarGames\" was shot in 1983. "
	if e.Input != want || e.Target != "not_entailment" {
		t.Errorf("got %q → %q", e.Input, e.Target)
	}
}
