package metrics

import (
	"fmt"
	"math"
)

// Summary is the mean and spread of one number over seeds.
type Summary struct {
	Mean float64
	// Std is the sample standard deviation (n−1 in the denominator); 0 for
	// a single value.
	Std float64
	N   int
}

// Summarize returns the mean and sample standard deviation of xs.
func Summarize(xs []float64) (Summary, error) {
	if len(xs) == 0 {
		return Summary{}, fmt.Errorf("metrics: no values to summarize")
	}
	s := Summary{N: len(xs)}
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Summary{}, fmt.Errorf("metrics: cannot summarize %v", x)
		}
		s.Mean += x
	}
	s.Mean /= float64(len(xs))
	if len(xs) > 1 {
		ss := 0.0
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Std = math.Sqrt(ss / float64(len(xs)-1))
	}
	return s, nil
}

// String prints "mean ± std" with two decimals.
func (s Summary) String() string { return fmt.Sprintf("%.2f ± %.2f", s.Mean, s.Std) }
