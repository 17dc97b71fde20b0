package method

import (
	"slices"
	"strings"
	"testing"
)

// Each quirk switches its own behaviour and no other; "all" switches
// every one; lists are canonical and unknown names are errors.
func TestQuirksSwitchSeparately(t *testing.T) {
	on := func(c SHLPTConfig) []string {
		var got []string
		if c.partition().BatchNegatives {
			got = append(got, QuirkBatchPartition)
		}
		if c.PadToMax() {
			got = append(got, QuirkPadMaxPool)
		}
		if w := hscWeights([][]bool{{true, false}}, c.quirk(QuirkHSCPadding)); w[1] != 0 {
			got = append(got, QuirkHSCPadding)
		}
		if m := ascMask([]float32{-1}, c.quirk(QuirkASCSignMask)); m[0] == 2 {
			got = append(got, QuirkASCSignMask)
		}
		if c.quirk(QuirkLiveValidation) {
			got = append(got, QuirkLiveValidation)
		}
		if !(&SHLPT{cfg: c}).FreshOptimizer() {
			got = append(got, QuirkSharedOptimizer)
		}
		return got
	}
	for _, q := range QuirkNames {
		c := DefaultSHLPT()
		c.Quirks = []string{q}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := on(c); !slices.Equal(got, []string{q}) {
			t.Errorf("--quirks %s switches %v", q, got)
		}
	}
	c := DefaultSHLPT()
	if got := on(c); len(got) != 0 {
		t.Errorf("the default switches %v", got)
	}
	c.Quirks = []string{QuirksAll}
	if got := on(c); !slices.Equal(got, QuirkNames) {
		t.Errorf("--quirks all switches %v", got)
	}

	got, err := ParseQuirks([]string{"live-validation", " hsc-padding", "live-validation"})
	if err != nil || !slices.Equal(got, []string{QuirkHSCPadding, QuirkLiveValidation}) {
		t.Errorf("parsed %v (%v), want canonical order without repeats", got, err)
	}
	if got, err := ParseQuirks([]string{"all"}); err != nil || !slices.Equal(got, QuirkNames) {
		t.Errorf("all parsed to %v (%v)", got, err)
	}
	if got, err := ParseQuirks(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("no quirks parsed to %#v (%v), want an empty list", got, err)
	}
	if _, err := ParseQuirks([]string{"batch-partitions"}); err == nil || !strings.Contains(err.Error(), "batch-partition,") {
		t.Errorf("unknown quirk: %v", err)
	}
	for _, bad := range [][]string{{"nope"}, {QuirkPadMaxPool, QuirkPadMaxPool}, {""}} {
		c := DefaultSHLPT()
		c.Quirks = bad
		if c.Validate() == nil {
			t.Errorf("quirks %q validate", bad)
		}
	}
}
