package metrics

import (
	"math"
	"strings"
	"testing"
)

func TestLifelong(t *testing.T) {
	for _, tc := range []struct {
		name                               string
		r                                  Matrix
		baseline                           []float64
		avg, bwt, fwt, forget, avgAtStage1 float64
	}{
		{
			name:     "forgetting",
			r:        Matrix{{0.9}, {0.8, 0.7}, {0.6, 0.65, 0.5}},
			baseline: []float64{0.85, 0.6, 0.55},
			// avg (0.6+0.65+0.5)/3; bwt ((0.6-0.9)+(0.65-0.7))/2;
			// fwt ((0.7-0.6)+(0.5-0.55))/2; forgetting ((0.9-0.6)+(0.7-0.65))/2.
			avg: 1.75 / 3, bwt: -0.175, fwt: 0.025, forget: 0.175, avgAtStage1: 0.75,
		},
		{
			name:     "improving, square matrix",
			r:        Matrix{{0.5, 9, 9}, {0.7, 0.6, 9}, {0.8, 0.6, 0.9}},
			baseline: []float64{0, 0.6, 1},
			// forgetting: (max(0.5,0.7)-0.8) + (0.6-0.6), over 2.
			avg: 2.3 / 3, bwt: (0.3 + 0) / 2, fwt: (0 - 0.1) / 2, forget: -0.05, avgAtStage1: 0.65,
		},
		{
			name:     "frozen prompts: no transfer back",
			r:        Matrix{{0.9}, {0.9, 0.8}},
			baseline: []float64{0.9, 0.7},
			avg:      0.85, bwt: 0, fwt: 0.1, forget: 0, avgAtStage1: 0.85,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, got float64, err error, want float64) {
				t.Helper()
				if err != nil || math.Abs(got-want) > 1e-12 {
					t.Errorf("%s = %v, %v; want %v", what, got, err, want)
				}
			}
			v, err := Average(tc.r)
			check("Average", v, err, tc.avg)
			v, err = AverageAt(tc.r, 1)
			check("AverageAt(1)", v, err, tc.avgAtStage1)
			v, err = BWT(tc.r)
			check("BWT", v, err, tc.bwt)
			v, err = FWT(tc.r, tc.baseline)
			check("FWT", v, err, tc.fwt)
			v, err = Forgetting(tc.r)
			check("Forgetting", v, err, tc.forget)
			per, err := ForgettingPerTask(tc.r)
			sum := 0.0
			for _, f := range per {
				sum += f
			}
			if len(per) != len(tc.r)-1 {
				t.Errorf("ForgettingPerTask has %d entries for %d tasks", len(per), len(tc.r))
			}
			check("mean of ForgettingPerTask", sum/float64(len(per)), err, tc.forget)
		})
	}
}

func TestLifelongErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() (float64, error)
		has  string
	}{
		{"empty", func() (float64, error) { return Average(nil) }, "empty"},
		{"short row", func() (float64, error) { return Average(Matrix{{1}, {1}}) }, "row 1 has 1 entries, needs 2"},
		{"NaN", func() (float64, error) { return Average(Matrix{{math.NaN()}}) }, "[0][0] is NaN"},
		{"one task BWT", func() (float64, error) { return BWT(Matrix{{1}}) }, "at least 2 tasks"},
		{"one task forgetting", func() (float64, error) { return Forgetting(Matrix{{1}}) }, "at least 2 tasks"},
		{"baseline length", func() (float64, error) { return FWT(Matrix{{1}, {1, 1}}, []float64{1}) }, "1 baseline scores for 2 tasks"},
		{"stage range", func() (float64, error) { return AverageAt(Matrix{{1}}, 1) }, "stage 1"},
	} {
		if _, err := tc.f(); err == nil || !strings.Contains(err.Error(), tc.has) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.has)
		}
	}
}

func TestSummarize(t *testing.T) {
	s, err := Summarize([]float64{80, 82, 81})
	if err != nil || s.Mean != 81 || s.Std != 1 || s.N != 3 || s.String() != "81.00 ± 1.00" {
		t.Errorf("got %+v %q, %v", s, s.String(), err)
	}
	s, err = Summarize([]float64{5})
	if err != nil || s.Mean != 5 || s.Std != 0 {
		t.Errorf("one value: %+v, %v", s, err)
	}
	if _, err := Summarize(nil); err == nil {
		t.Error("no values accepted")
	}
	if _, err := Summarize([]float64{1, math.Inf(1)}); err == nil {
		t.Error("infinity accepted")
	}
}
