package t5

import (
	"math"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// fixtureBatch is a small batch for the tiny model (vocabulary 100).
func fixtureBatch(t *testing.T, m *Model) *Batch {
	t.Helper()
	b, err := m.NewBatch([][]int{{5, 17, 33, 8, 1}, {44, 2, 91, 60, 12, 70, 3, 1}, {9, 1}}, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	return b
}

// teacherForcedArgmax returns, for each prefix of seq, the most likely next
// token from a full (uncached) decoder pass.
func teacherForcedArgmax(t *testing.T, m *Model, enc, mask *ag.Tensor, seqs [][]int) [][]int {
	t.Helper()
	e := m.e
	defer e.NoGrad()()
	T := len(seqs[0]) - 1
	B := len(seqs)
	dec := make([]int32, B*T)
	for b, s := range seqs {
		for j := 0; j < T; j++ {
			dec[b*T+j] = int32(s[j])
		}
	}
	ids := e.FromInt32(dec, B, T)
	h, _ := m.decode(ids, enc, mask, false)
	lg := m.logits(h)
	v, err := lg.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	release(ids, h, lg)
	V := m.Config.VocabSize
	out := make([][]int, B)
	for b := range out {
		for j := 0; j < T; j++ {
			row := v[(b*T+j)*V : (b*T+j+1)*V]
			best := 0
			for k := range row {
				if row[k] > row[best] {
					best = k
				}
			}
			out[b] = append(out[b], best)
		}
	}
	return out
}

// The cached greedy decoder agrees with full recomputation.
func TestGreedyMatchesUncached(t *testing.T) {
	m := loadFixture(t)
	b := fixtureBatch(t, m)
	enc, mask := m.EncodeBatch(b, nil)
	defer release(enc, mask)
	seqs, err := m.Greedy(enc, mask, 6, false)
	if err != nil {
		t.Fatal(err)
	}
	want := teacherForcedArgmax(t, m, enc, mask, seqs)
	for r := range seqs {
		for j := range want[r] {
			if seqs[r][j+1] != want[r][j] {
				t.Fatalf("row %d step %d: cached %d, uncached %d", r, j, seqs[r][j+1], want[r][j])
			}
		}
	}
}

// Reordering the cache moves rows: stepping a reordered state matches a
// fresh state fed the reordered histories.
func TestDecodeStateReorder(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	defer e.NoGrad()()
	// The rows share one input: the cache of deeper layers depends on the
	// encoder row, so only beams of the same input may exchange caches.
	b, err := m.NewBatch([][]int{{5, 17, 33, 8, 1}, {5, 17, 33, 8, 1}, {5, 17, 33, 8, 1}}, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	enc, mask := m.EncodeBatch(b, nil)
	defer release(enc, mask)
	hist := [][]int{{0, 7, 19}, {0, 3, 3}, {0, 50, 1}}
	st, err := m.newDecodeState(enc, mask, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.release()
	for j := 0; j < 3; j++ {
		if _, err := st.step([]int{hist[0][j], hist[1][j], hist[2][j]}); err != nil {
			t.Fatal(err)
		}
	}
	// Row 0 takes row 2's history, row 2 row 0's; the encoder rows stay.
	if err := st.reorder([]int32{2, 1, 0}); err != nil {
		t.Fatal(err)
	}
	got, err := st.step([]int{4, 4, 4})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := m.newDecodeState(enc, mask, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.release()
	swapped := [][]int{hist[2], hist[1], hist[0]}
	for j := 0; j < 3; j++ {
		if _, err := fresh.step([]int{swapped[0][j], swapped[1][j], swapped[2][j]}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := fresh.step([]int{4, 4, 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("logit %d after reorder: %v, want %v", i, got[i], want[i])
		}
	}
}

// One beam without penalties is greedy decoding.
func TestBeamOfOneIsGreedy(t *testing.T) {
	m := loadFixture(t)
	b := fixtureBatch(t, m)
	enc, mask := m.EncodeBatch(b, nil)
	defer release(enc, mask)
	greedy, err := m.Greedy(enc, mask, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	beam, err := m.BeamSearch(enc, mask, BeamOptions{NumBeams: 1, MaxLength: 6, RepetitionPenalty: 1, LengthPenalty: 1, EarlyStopping: true})
	if err != nil {
		t.Fatal(err)
	}
	for r := range greedy {
		for j, tok := range beam[r] {
			if j < len(greedy[r]) && greedy[r][j] != tok {
				t.Fatalf("row %d: beam %v, greedy %v", r, beam[r], greedy[r])
			}
		}
	}
}

// The reference settings and a configuration without early stopping give
// well-formed sequences: start id first, within the length limit.
func TestBeamSearch(t *testing.T) {
	m := loadFixture(t)
	b := fixtureBatch(t, m)
	enc, mask := m.EncodeBatch(b, nil)
	defer release(enc, mask)
	for _, o := range []BeamOptions{ReferenceBeam(5), {NumBeams: 3, MaxLength: 7, RepetitionPenalty: 1, LengthPenalty: 1, EarlyStopping: false}} {
		seqs, err := m.BeamSearch(enc, mask, o)
		if err != nil {
			t.Fatal(err)
		}
		for r, s := range seqs {
			if len(s) < 2 || len(s) > o.MaxLength || s[0] != 0 {
				t.Errorf("%+v: row %d: %v", o, r, s)
			}
		}
	}
}

// Rank classification scores equal −(mean token loss × tokens) of a
// teacher-forced forward pass on each candidate.
func TestScoreCandidates(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	cands := [][]int{{7, 1}, {33, 12, 1}, {1}}
	inputs := [][]int{{5, 17, 33, 8, 1}, {44, 2, 91, 1}}
	b, err := m.NewBatch(inputs, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, mask := m.EncodeBatch(b, nil)
	scores, err := m.ScoreCandidates(enc, mask, cands)
	release(enc, mask)
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	for r, in := range inputs {
		for c, cand := range cands {
			tb, err := m.NewBatch([][]int{in}, [][]int{cand}, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			out := m.Forward(tb, Options{})
			l, err := out.Loss.Item()
			if err != nil {
				t.Fatal(err)
			}
			out.Release()
			tb.Release()
			e.DropTape()
			want := -float64(l) * float64(len(cand))
			if math.Abs(scores[r][c]-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Errorf("input %d candidate %d: score %v, want %v", r, c, scores[r][c], want)
			}
		}
	}
}
