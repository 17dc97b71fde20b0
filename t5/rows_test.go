package t5

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
)

// rowCase is a row of a mixed batch: its prompt (nil: none), input,
// candidates and decoding settings.
type rowCase struct {
	prompt []float32 // Lp·d values
	input  []int
	cands  [][]int
	steps  int         // greedy steps
	beam   BeamOptions // beam settings
}

// mixedRows are rows with prompts of different lengths (and none), inputs
// of different lengths, different candidates and decoding settings, as
// requests of different tasks are.
func mixedRows(d int) []rowCase {
	return []rowCase{
		{promptValues(5*d, 0.3), []int{37, 812, 95, 1001, 44, 7, 1}, [][]int{{37, 1}, {812, 95, 1}}, 4,
			BeamOptions{NumBeams: 3, MaxLength: 5, RepetitionPenalty: 2.5, LengthPenalty: 1, EarlyStopping: true}},
		{promptValues(2*d, 1.1), []int{5, 9, 13, 2, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 1},
			[][]int{{4, 1}, {5, 1}, {6, 7, 8, 9, 1}}, 2,
			BeamOptions{NumBeams: 3, MaxLength: 3, RepetitionPenalty: 1, LengthPenalty: 1, EarlyStopping: true}},
		{nil, []int{11, 3, 1}, [][]int{{1}, {20, 1}}, 6,
			BeamOptions{NumBeams: 3, MaxLength: 7, RepetitionPenalty: 1.5, LengthPenalty: 1, EarlyStopping: false}},
		{promptValues(9*d, 2.2), []int{600, 1}, [][]int{{37, 1}, {812, 95, 1}}, 3,
			BeamOptions{NumBeams: 3, MaxLength: 4, RepetitionPenalty: 2.5, LengthPenalty: 1, EarlyStopping: true}},
	}
}

// alone runs row r in a batch of its own the way evaluation does: Encode
// with its prompt shared by the batch, then scoring and decoding.
func alone(t *testing.T, m *Model, r rowCase) (enc []float32, scores []float64, greedy, beam []int) {
	t.Helper()
	e := m.e
	d := m.Config.DModel
	b, err := m.NewBatch([][]int{r.input}, nil, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	var p *ag.Tensor
	if r.prompt != nil {
		p = e.FromFloat32(r.prompt, len(r.prompt)/d, d)
	}
	ev, mask := m.EncodeBatch(b, p)
	p.Release()
	defer ev.Release()
	defer mask.Release()
	enc = readAll(t, ev)
	sc, err := m.ScoreCandidates(ev, mask, r.cands)
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Greedy(ev, mask, r.steps, true)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := m.BeamSearch(ev, mask, r.beam)
	if err != nil {
		t.Fatal(err)
	}
	return enc, sc[0], g[0], bs[0]
}

// Rows of different prompts, inputs, candidates and decoding settings in
// one padded batch give exactly (bit for bit) what each gives in a batch
// of its own through Encode with a shared prompt.
func TestRowBatchMatchesAlone(t *testing.T) {
	m := loadWith(t, "../testdata/t5-tiny-fullvocab", ag.F32)
	e := m.e
	d := m.Config.DModel
	rows := mixedRows(d)
	// The prompt table holds every row's prompt, in reverse order with a
	// spare row in front, so offsets are not trivial.
	table := make([]float32, d)
	prs := make([]PromptRow, len(rows))
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		prs[i] = PromptRow{Offset: len(table) / d, Len: len(r.prompt) / d, Input: r.input}
		table = append(table, r.prompt...)
	}
	tab := e.FromFloat32(table, len(table)/d, d)
	defer tab.Release()
	for _, padTo := range []int{0, 37} {
		t.Run(fmt.Sprintf("padTo=%d", padTo), func(t *testing.T) {
			rb, err := m.NewRowBatch(prs, padTo, tab.Dim(0))
			if err != nil {
				t.Fatal(err)
			}
			defer rb.Release()
			enc, mask := m.EncodeRows(tab, rb)
			defer enc.Release()
			defer mask.Release()
			got := readAll(t, enc)
			cands := make([][][]int, len(rows))
			steps, opts := 0, make([]BeamOptions, len(rows))
			for i, r := range rows {
				cands[i], opts[i] = r.cands, r.beam
				steps = max(steps, r.steps)
			}
			c, err := m.NewRowCandidates(cands, padTo/6)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()
			per, err := m.CandidateLosses(enc, mask, c)
			if err != nil {
				t.Fatal(err)
			}
			scores, err := c.Scores(readAll(t, per))
			per.Release()
			if err != nil {
				t.Fatal(err)
			}
			greedy, err := m.Greedy(enc, mask, steps, true)
			if err != nil {
				t.Fatal(err)
			}
			beams, err := m.BeamSearchRows(enc, mask, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rows {
				wantEnc, wantScores, wantGreedy, wantBeam := alone(t, m, r)
				n := len(wantEnc)
				if off := i * rb.T * d; !slices.Equal(got[off:off+n], wantEnc) {
					t.Errorf("row %d: encoder output differs from the row alone", i)
				}
				if !slices.Equal(scores[i], wantScores) {
					t.Errorf("row %d: candidate scores %v, alone %v", i, scores[i], wantScores)
				}
				g := greedy[i][:min(len(greedy[i]), r.steps+1)]
				if !slices.Equal(trimPad(g), trimPad(wantGreedy)) {
					t.Errorf("row %d: greedy %v, alone %v", i, g, wantGreedy)
				}
				if !slices.Equal(beams[i], wantBeam) {
					t.Errorf("row %d: beam search %v, alone %v", i, beams[i], wantBeam)
				}
			}
		})
	}
}

// trimPad drops the padding a stopped greedy row gets after </s>.
func trimPad(s []int) []int {
	for len(s) > 1 && s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	return s
}

func TestRowBatchErrors(t *testing.T) {
	m := loadWith(t, "../testdata/t5-tiny-fullvocab", ag.F32)
	for _, c := range []struct {
		rows []PromptRow
		want string
	}{
		{nil, "empty batch"},
		{[]PromptRow{{Input: nil}}, "row 0 is empty"},
		{[]PromptRow{{Offset: 3, Len: 2, Input: []int{1}}}, "outside the table of 4"},
		{[]PromptRow{{Input: []int{5, 40000, 1}}}, "id 40000 outside the vocabulary"},
	} {
		_, err := m.NewRowBatch(c.rows, 0, 4)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.rows, err, c.want)
		}
	}
	rb, err := m.NewRowBatch([]PromptRow{{Input: []int{5, 1}}}, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Release()
	if err := m.WriteRowBatch(rb, []PromptRow{{Input: []int{5, 6, 1}}}, 4); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("a longer row written into the batch: %v", err)
	}
	tab := m.e.Zeros(4, m.Config.DModel)
	defer tab.Release()
	enc, mask := m.EncodeRows(tab, rb)
	defer enc.Release()
	defer mask.Release()
	o := ReferenceBeam(3)
	for _, opts := range [][]BeamOptions{nil, {o, o}} {
		if _, err := m.BeamSearchRows(enc, mask, opts); err == nil || !strings.Contains(err.Error(), "beam search of 1 rows") {
			t.Errorf("beam search of 1 row with %d options: %v", len(opts), err)
		}
	}
}
