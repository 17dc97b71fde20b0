package t5

import (
	"math"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// rowPrompt is a prompt for each input row, a function of the row alone:
// (Lp, d) values per row, so that a row gets the same prompt in any batch.
func rowPrompt(inputs [][]int, Lp, d int) []float32 {
	out := make([]float32, 0, len(inputs)*Lp*d)
	for _, in := range inputs {
		for i := 0; i < Lp*d; i++ {
			out = append(out, float32(math.Sin(float64(in[0]*31+i)))*0.5)
		}
	}
	return out
}

// CandidateLosses recorded once on a batch of B rows padded to L tokens and
// replayed on new rows (a full batch, then a short one filled up with
// copies of its last row) scores every real row as ScoreCandidates does on
// the rows alone, without a prompt, with one shared prompt and with one
// prompt per row.
func TestCandidateLossesReplayed(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	cands := [][]int{{7, 1}, {33, 12, 1}, {1}}
	sets := [][][]int{
		{{5, 17, 33, 8, 1}, {44, 2, 91, 60, 12, 70, 3, 1}, {9, 1}},
		{{61, 4, 1}, {20, 21, 22, 23, 1}},
	}
	const B, L, Lp = 3, 8, 2
	d := m.Config.DModel
	shared := rowPrompt([][]int{{3}}, Lp, d)
	for _, tc := range []struct {
		name  string
		shape []int // of the prompt for B rows; nil for none
	}{{"none", nil}, {"shared", []int{Lp, d}}, {"per-row", []int{B, Lp, d}}} {
		t.Run(tc.name, func(t *testing.T) {
			prompt := func(inputs [][]int) []float32 {
				if len(tc.shape) == 3 {
					return rowPrompt(inputs, Lp, d)
				}
				return shared
			}
			pad := make([][]int, B)
			for i := range pad {
				pad[i] = []int{1}
			}
			batch, err := m.NewBatch(pad, nil, L, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer batch.Release()
			var slot *ag.Tensor
			if tc.shape != nil {
				slot = e.Zeros(tc.shape...)
				defer slot.Release()
			}
			c, err := m.NewCandidates(B, cands)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()
			var per *ag.Tensor
			prog, err := e.Capture(func() error {
				enc, mask := m.EncodeBatch(batch, slot)
				per, err = m.CandidateLosses(enc, mask, c)
				release(enc, mask)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer prog.Release()
			for si, rows := range sets {
				full := append([][]int(nil), rows...)
				for len(full) < B {
					full = append(full, rows[len(rows)-1])
				}
				if err := m.WriteBatch(batch, full, nil); err != nil {
					t.Fatal(err)
				}
				if slot != nil {
					if err := slot.WriteFloat32(prompt(full)); err != nil {
						t.Fatal(err)
					}
				}
				if err := prog.Run(); err != nil {
					t.Fatal(err)
				}
				v, err := per.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.Scores(v)
				if err != nil {
					t.Fatal(err)
				}
				want := eagerScores(t, m, rows, tc.shape, prompt(rows), cands)
				for r := range rows {
					for ci := range cands {
						if diff := math.Abs(got[r][ci] - want[r][ci]); !(diff <= 1e-5) {
							t.Errorf("set %d row %d candidate %d: replayed %v, eager %v (difference %.3g)", si, r, ci, got[r][ci], want[r][ci], diff)
						}
					}
				}
			}
		})
	}
}

// eagerScores is ScoreCandidates on rows alone, padded to their longest,
// with prompt values p of shape (a per-row shape gets len(rows) rows).
func eagerScores(t *testing.T, m *Model, rows [][]int, shape []int, p []float32, cands [][]int) [][]float64 {
	t.Helper()
	b, err := m.NewBatch(rows, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	var pt *ag.Tensor
	switch len(shape) {
	case 2:
		pt = m.e.FromFloat32(p, shape...)
	case 3:
		pt = m.e.FromFloat32(p, len(rows), shape[1], shape[2])
	}
	enc, mask := m.EncodeBatch(b, pt)
	release(pt)
	defer release(enc, mask)
	s, err := m.ScoreCandidates(enc, mask, cands)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Bad candidates and mismatched encoder outputs are errors naming them.
func TestCandidatesRefused(t *testing.T) {
	m := loadFixture(t)
	for _, tc := range []struct {
		name  string
		cands [][]int
	}{{"none", nil}, {"empty", [][]int{{1}, {}}}, {"outside", [][]int{{100, 1}}}} {
		if c, err := m.NewCandidates(2, tc.cands); err == nil {
			c.Release()
			t.Errorf("%s: accepted", tc.name)
		}
	}
	c, err := m.NewCandidates(2, [][]int{{7, 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	b := fixtureBatch(t, m) // 3 rows
	enc, mask := m.EncodeBatch(b, nil)
	defer release(enc, mask)
	if per, err := m.CandidateLosses(enc, mask, c); err == nil {
		per.Release()
		t.Error("candidates for 2 rows scored 3 rows")
	}
	if _, err := c.Scores(make([]float32, 3)); err == nil {
		t.Error("3 token losses accepted for 2 rows × 1 candidate × 2 tokens")
	}
}
