package run

import (
	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
)

func pct(v float64) *float64 {
	x := 100 * v
	return &x
}

// scoreMap returns every score of a result in percent.
func scoreMap(r metrics.Result) map[string]float64 {
	out := map[string]float64{}
	for _, s := range r.Scores {
		out[s.Name] = 100 * s.Value
	}
	return out
}
