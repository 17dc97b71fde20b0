package method

import (
	"testing"

	"github.com/shlpt-vk/shlpt-vk/t5"
)

// The weights of the named T5 sizes are their published parameter counts
// (t5-small 60.5M, t5-base 222.9M, t5-large 737.7M) in fp32, and EWC and
// ER add what they keep.
func TestFullWeightMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params float64 // millions
	}{{"t5-small", 60.5}, {"t5-base", 222.9}, {"t5-large", 737.7}} {
		c, err := t5.NamedConfig(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		m := FullWeightMemory(c, 8, 256, 5, false, false)
		if got := float64(m.Weights) / 4 / 1e6; got < tc.params-0.2 || got > tc.params+0.2 {
			t.Errorf("%s: %.1fM parameters, want %.1fM", tc.name, got, tc.params)
		}
		e := FullWeightMemory(c, 8, 256, 5, true, false)
		r := FullWeightMemory(c, 8, 256, 5, false, true)
		if e.Total-m.Total != 2*m.Weights || r.Activations != 2*m.Activations || m.Total != 4*m.Weights+m.Activations {
			t.Errorf("%s: plain %v, ewc %v, er %v", tc.name, m, e, r)
		}
	}
}
