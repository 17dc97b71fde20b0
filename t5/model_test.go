package t5

import (
	"path/filepath"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
)

func TestMain(m *testing.M) { gputest.Main(m) }

const fixture = "../testdata/t5-tiny-relu"

func loadFixture(t *testing.T) *Model {
	t.Helper()
	return loadWith(t, fixture, ag.F32)
}

// The tiny checkpoint against outputs of an independent float64
// implementation with HF semantics: every expected tensor within 1e-4 of
// its largest magnitude (1e-3 for gradients), greedy ids exactly.
func TestReferenceCase(t *testing.T) {
	m := loadFixture(t)
	res, err := CheckCase(m, filepath.Join(fixture, "case.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 10 {
		t.Errorf("only %d tensors compared", len(res))
	}
	for _, r := range res {
		t.Log(r)
		if !r.OK {
			t.Errorf("%s", r)
		}
	}
}
