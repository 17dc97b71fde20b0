package report

import "testing"

// A handful of published cells, as read in the sources paper.json names.
func TestPublishedSpotCheck(t *testing.T) {
	p, err := Published()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  PaperKey
		want float64
	}{
		{PaperKey{Benchmark: "std", Method: "shlpt", Metric: "average"}, 80.28},
		{PaperKey{Benchmark: "long", Method: "shlpt", Metric: "average"}, 77.49},
		{PaperKey{Benchmark: "nt", Order: 1, Method: "shlpt", Metric: "average"}, 83.37},
		{PaperKey{Benchmark: "nt", Order: 3, Method: "shlpt", Metric: "average"}, 70.16},
		{PaperKey{Benchmark: "std", Order: 1, Method: "shlpt", Variant: "-STT", Metric: "average"}, 79.49},
		{PaperKey{Benchmark: "nt", Order: 1, Method: "shlpt", Variant: "-ASE", Metric: "average"}, 81.84},
	} {
		got := p.Lookup(c.key)
		if got == nil || got.Value != c.want {
			t.Errorf("%+v: %+v, want %v", c.key, got, c.want)
		}
	}
	if p.Lookup(PaperKey{Benchmark: "std", Method: "l2p", Metric: "average"}) != nil {
		t.Error("a cell that could not be read has a value")
	}
	// Every cell names its table, row, column and source; every table of
	// 1-5 and 10-15 has cells or is listed as missing.
	seen := map[string]bool{}
	for _, c := range p.Cells {
		if c.Table == "" || c.Row == "" || c.Column == "" || c.Source == "" || c.Key.Metric == "" {
			t.Errorf("incomplete cell %+v", c)
		}
		seen[c.Table] = true
	}
	for _, m := range p.Missing {
		seen[m.Table] = true
	}
	for _, tab := range []string{"1", "2", "3", "4", "5", "10", "11", "12", "13", "14", "15"} {
		if !seen[tab] {
			t.Errorf("table %s is neither in the cells nor listed as missing", tab)
		}
	}
}
