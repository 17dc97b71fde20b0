package t5

import (
	"slices"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// WriteBatch fills an existing batch exactly as NewBatch builds a new one
// of the same shape, and refuses rows that do not fit.
func TestWriteBatch(t *testing.T) {
	m := loadFixture(t)
	b, err := m.NewBatch([][]int{{5, 1}, {4, 4, 8, 1}}, [][]int{{6, 1}, {9, 1}}, 6, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	inputs := [][]int{{7, 7, 7, 7, 7, 1}, {3, 1}}
	targets := [][]int{{2, 3, 4, 1}, {1}}
	if err := m.WriteBatch(b, inputs, targets); err != nil {
		t.Fatal(err)
	}
	want, err := m.NewBatch(inputs, targets, 6, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Release()
	for _, pair := range [][2]*ag.Tensor{{b.InputIDs, want.InputIDs}, {b.DecoderInputIDs, want.DecoderInputIDs}, {b.Labels, want.Labels}} {
		g, err1 := pair[0].Int32s()
		w, err2 := pair[1].Int32s()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !slices.Equal(g, w) {
			t.Errorf("written %v, built %v", g, w)
		}
	}
	gm, _ := b.InputMask.Float32s()
	wm, _ := want.InputMask.Float32s()
	if !slices.Equal(gm, wm) {
		t.Errorf("written mask %v, built %v", gm, wm)
	}
	if err := m.WriteBatch(b, [][]int{{1, 2, 3, 4, 5, 6, 1}, {1}}, targets); err == nil {
		t.Error("a row longer than the batch was accepted")
	}
	if err := m.WriteBatch(b, inputs[:1], targets[:1]); err == nil {
		t.Error("a row count other than the batch's was accepted")
	}
	if err := m.WriteBatch(b, inputs, nil); err == nil {
		t.Error("rows without targets were accepted into a batch with labels")
	}
}
