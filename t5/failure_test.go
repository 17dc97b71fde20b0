package t5

import (
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/gpu/gputest"
	"github.com/shlpt-vk/shlpt-vk/t5/safetensors"
)

// noPanic runs f and turns a panic into a test failure with its stack.
func noPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s panicked: %v\n%s", what, r, debug.Stack())
		}
	}()
	f()
}

// expectFailure checks that the engine failed with an error mentioning
// want, and forgets it so that the test's cleanup sees a usable engine.
func expectFailure(t *testing.T, e *ag.Engine, want string) {
	t.Helper()
	err := e.Err()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("engine error %v, want one mentioning %q", err, want)
	}
	e.ClearErr()
}

// checkPlaceholder checks that a failed pass's output has the shape it
// would have had and that reading it, or computing on it, returns the
// engine's first error.
func checkPlaceholder(t *testing.T, e *ag.Engine, name string, x *ag.Tensor, shape ...int) {
	t.Helper()
	if x == nil {
		t.Errorf("%s: nil after a failed pass", name)
		return
	}
	if !sameShape(x.Shape(), shape) {
		t.Errorf("%s: shape %v, want %v", name, x.Shape(), shape)
	}
	first := e.Err()
	if _, err := x.Float32s(); err != first {
		t.Errorf("%s: read returned %v, want the first error %v", name, err, first)
	}
	y := ag.Scale(x, 2)
	if _, err := y.Float32s(); err != first || !sameShape(y.Shape(), shape) {
		t.Errorf("%s: an op on it gave %v with %v, want %v with the first error", name, y, err, shape)
	}
	y.Release()
}

// Bad inputs to Forward are errors of the engine, not panics: every
// requested output is a placeholder of its shape, reads of which (and ops
// on which) return the first error, as do Backward and an optimizer step.
func TestForwardFailures(t *testing.T) {
	type input struct {
		B, L, T, Lp int
		limit       int64 // binding limit in bytes, 0 for the device's
	}
	cases := []struct {
		name string
		in   input
		want string
	}{
		{"empty prompt", input{B: 2, L: 5, T: 3, Lp: 0}, "dimensions must be positive"},
		{"zero batch", input{B: 0, L: 5, T: 3, Lp: 2}, "dimensions must be positive"},
		{"zero length", input{B: 2, L: 0, T: 3, Lp: 0}, "dimensions must be positive"},
		{"zero target length", input{B: 2, L: 5, T: 0, Lp: 2}, "dimensions must be positive"},
		// The position bias of 4 heads over 70 positions (78 KiB) is more
		// than one binding may hold under a 64 KiB limit.
		{"over-long input", input{B: 2, L: 68, T: 3, Lp: 2, limit: 64 << 10}, "exceeds one binding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := loadFixture(t)
			e := m.e
			if c.in.limit > 0 {
				gputest.LimitBindings(t, e.Device(), c.in.limit)
			}
			in := c.in
			d, V, F := m.Config.DModel, m.Config.VocabSize, m.Config.DFF
			ids := make([]int32, in.B*in.L)
			for i := range ids {
				ids[i] = int32(2 + i%(V-2))
			}
			labels := make([]int32, in.B*in.T)
			for i := range labels {
				labels[i] = int32(3 + i%(V-3))
			}
			b := &Batch{
				InputIDs:        e.FromInt32(ids, in.B, in.L),
				InputMask:       e.Zeros(in.B, in.L),
				DecoderInputIDs: e.FromInt32(labels, in.B, in.T),
				Labels:          e.FromInt32(labels, in.B, in.T),
			}
			defer b.Release()
			prompt := e.Param("prompt", make([]float32, in.Lp*d), in.Lp, d)
			defer prompt.Release()
			opt, err := ag.NewAdamW(e, []*ag.Tensor{prompt}, ag.DefaultAdamWConfig)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Release()
			if err := e.Err(); err != nil {
				t.Fatalf("building the inputs: %v", err)
			}
			noPanic(t, "Forward", func() {
				out := m.Forward(b, Options{Prompt: prompt, Logits: true, Hidden: true, FFNActFirst: true, EncoderOut: true})
				defer out.Release()
				if e.Err() == nil {
					t.Fatal("no error")
				}
				checkPlaceholder(t, e, "loss", out.Loss, 1)
				checkPlaceholder(t, e, "logits", out.Logits, in.B, in.T, V)
				checkPlaceholder(t, e, "hidden", out.Hidden, in.B, in.T, d)
				checkPlaceholder(t, e, "ffn activation", out.FFNActFirst, in.B, F)
				checkPlaceholder(t, e, "encoder output", out.EncoderOut, in.B, in.Lp+in.L, d)
				if err := e.Backward(out.Loss); err != e.Err() {
					t.Errorf("Backward returned %v, want the first error", err)
				}
				opt.Step()
				// Code written for the old contract (a nil loss after an
				// error) takes this branch no more, and what follows runs
				// on the placeholders.
				if out.Loss != nil {
					l := out.Loss.Reshape(1)
					l.Release()
				}
			})
			expectFailure(t, e, c.want)
		})
	}
}

// Forward without a batch, or with a batch of the wrong ranks, fails the
// engine without a panic.
func TestForwardBadBatch(t *testing.T) {
	m := loadFixture(t)
	e := m.e
	noPanic(t, "Forward", func() {
		out := m.Forward(nil, Options{Logits: true})
		defer out.Release()
		checkPlaceholder(t, e, "logits", out.Logits, 0, 0, m.Config.VocabSize)
	})
	expectFailure(t, e, "batch needs")
	ids := e.FromInt32([]int32{1, 2, 3}, 3)
	defer ids.Release()
	noPanic(t, "Forward", func() {
		out := m.Forward(&Batch{InputIDs: ids, InputMask: ids, DecoderInputIDs: ids}, Options{Hidden: true})
		defer out.Release()
		checkPlaceholder(t, e, "hidden", out.Hidden, 3, 0, m.Config.DModel)
	})
	expectFailure(t, e, "must both be (B, L)")
}

// editCase writes the fixture's case file with the inputs replaced by
// (B, L) ids and (B, T) labels and a prompt of Lp rows.
func editCase(t *testing.T, B, L, T, Lp int) string {
	t.Helper()
	var ts []safetensors.Tensor
	for _, x := range fixtureCaseTensors(t) {
		if strings.HasPrefix(x.Name, "expected.") && x.Name != "expected.loss" {
			ts = append(ts, x)
		}
	}
	seq := func(n, base int) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(base + i%50)
		}
		return v
	}
	ones := make([]int64, B*L)
	for i := range ones {
		ones[i] = 1
	}
	ts = append(ts,
		safetensors.FromInt64("input_ids", []int{B, L}, seq(B*L, 2)),
		safetensors.FromInt64("attention_mask", []int{B, L}, ones),
		safetensors.FromInt64("labels", []int{B, T}, seq(B*T, 3)),
		safetensors.FromInt64("decoder_input_ids", []int{B, T}, seq(B*T, 0)),
		safetensors.FromFloat32("prompt", []int{Lp, 32}, make([]float32, Lp*32)),
		safetensors.FromFloat32("expected.loss", []int{1}, []float32{0}),
	)
	p := filepath.Join(t.TempDir(), "case.safetensors")
	if err := safetensors.Write(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// CheckCase (shlpt-vk t5check) on case files with bad inputs returns an
// error that says what is wrong, and does not panic.
func TestCheckCaseFailures(t *testing.T) {
	cases := []struct {
		name        string
		B, L, T, Lp int
		limit       int64
		want        []string // one of them
	}{
		{"empty prompt", 2, 6, 3, 0, 0, []string{"dimensions must be positive", "prompt"}},
		{"zero batch", 0, 6, 3, 2, 0, []string{"dimensions must be positive", "at least one row"}},
		{"zero length", 2, 0, 3, 2, 0, []string{"dimensions must be positive", "at least one row"}},
		{"zero target length", 2, 6, 0, 2, 0, []string{"dimensions must be positive", "at least one row"}},
		{"over-long input", 2, 68, 3, 2, 64 << 10, []string{"exceeds one binding"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := loadFixture(t)
			path := editCase(t, c.B, c.L, c.T, c.Lp)
			if c.limit > 0 {
				gputest.LimitBindings(t, m.e.Device(), c.limit)
			}
			var err error
			noPanic(t, "CheckCase", func() { _, err = CheckCase(m, path) })
			if err == nil {
				t.Fatal("no error")
			}
			found := false
			for _, w := range c.want {
				found = found || strings.Contains(err.Error(), w)
			}
			if !found {
				t.Errorf("error %q mentions none of %q", err, c.want)
			}
			m.e.ClearErr()
		})
	}
}

// A model whose vocabulary the case's ids do not fit, and a benchmark on a
// vocabulary too small for its random ids, are errors.
func TestTinyVocabulary(t *testing.T) {
	e := ag.New(gputest.Device(t))
	cfg, err := LoadConfig(fixture)
	if err != nil {
		t.Fatal(err)
	}
	cfg.VocabSize = 2
	cfg.DecoderStartTokenID, cfg.EOSTokenID, cfg.PadTokenID = 0, 1, 0
	m, err := NewRandom(e, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	noPanic(t, "CheckCase", func() {
		if _, err := CheckCase(m, filepath.Join(fixture, "case.safetensors")); err == nil || !strings.Contains(err.Error(), "vocabulary of 2") {
			t.Errorf("CheckCase: %v", err)
		}
	})
	noPanic(t, "BenchSteps", func() {
		o := BenchOptions{Batch: 1, Prompt: 1, Input: 3, Target: 2, Runs: 1}
		if _, err := BenchSteps(m, o); err == nil || !strings.Contains(err.Error(), "vocabulary") {
			t.Errorf("BenchSteps: %v", err)
		}
	})
	if err := e.Err(); err != nil {
		t.Errorf("engine: %v", err)
	}
}

// A model whose weights cannot fit the device is refused before anything
// is allocated on the host or the device.
func TestModelTooLarge(t *testing.T) {
	e := ag.New(gputest.Device(t))
	cfg, err := LoadConfig(fixture)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dModel, vocab int }{
		{1 << 20, 1 << 20}, // 4 TiB of embedding
		{1 << 24, 1 << 24}, // the largest sizes Validate accepts
	} {
		cfg.DModel, cfg.VocabSize = c.dModel, c.vocab
		noPanic(t, "NewRandom", func() {
			m, err := NewRandom(e, cfg, 1)
			if err == nil {
				m.Release()
				t.Fatalf("d_model %d, vocab %d: no error", c.dModel, c.vocab)
			}
			if !strings.Contains(err.Error(), "does not fit") {
				t.Errorf("d_model %d, vocab %d: %v", c.dModel, c.vocab, err)
			}
		})
	}
	if err := e.Err(); err != nil {
		t.Errorf("engine: %v", err)
	}
}
