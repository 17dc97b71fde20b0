package method

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// negativeCache holds, for every training example of a task, what the
// contrastive losses compare against (reference §3.4), computed once when
// the task begins, without gradients: for each stored prompt j the
// decoder's final hidden states h_j (T, d) and the last decoder block's
// activation at the first position a_j (F), both teacher-forced on the
// gold target with pool[j] alone as the prompt; and s0 (F), that
// activation without any prompt.
//
// The records live in a scratch file, not in memory: for T5-large they
// are P·(T·d + F)·4 + F·4 bytes per example (P·102 KB + 16 KB with
// T = 5), which grows with the pool and the few-shot set (docs/shlpt.md).
// Reading a batch's records costs one small read per row.
type negativeCache struct {
	f          *os.File
	P, T, D, F int
	n          int // examples
}

// negativeSource gives example i's precomputed negatives: hidden states
// (P, T, d), activations (P, F) and s0 (F).
type negativeSource interface {
	read(i int) (hid, act, s0 []float32, err error)
	Close() error
}

// memNegatives holds the negatives of a few examples in memory (one batch
// of a case file), in negativePasses' layout.
type memNegatives struct {
	P, T, D, F int
	hid, act   []float32 // (n, P, T, d), (n, P, F)
	s0         []float32 // (n, F)
}

func (c *memNegatives) read(i int) (hid, act, s0 []float32, err error) {
	if n := len(c.s0) / c.F; i < 0 || i >= n {
		return nil, nil, nil, fmt.Errorf("shlpt: negatives of example %d of %d", i, n)
	}
	h, a := c.P*c.T*c.D, c.P*c.F
	return c.hid[i*h : (i+1)*h], c.act[i*a : (i+1)*a], c.s0[i*c.F : (i+1)*c.F], nil
}

func (*memNegatives) Close() error { return nil }

// recordFloats is the float count of one example's record.
func (c *negativeCache) recordFloats() int { return c.P*(c.T*c.D+c.F) + c.F }

// Close deletes the scratch file.
func (c *negativeCache) Close() error {
	name := c.f.Name()
	c.f.Close()
	return removeQuietly(name)
}

// read returns example i's record: hidden (P, T, d), act (P, F), s0 (F).
func (c *negativeCache) read(i int) (hid, act, s0 []float32, err error) {
	if i < 0 || i >= c.n {
		return nil, nil, nil, fmt.Errorf("shlpt: negatives of example %d of %d", i, c.n)
	}
	n := c.recordFloats()
	buf := make([]byte, 4*n)
	if _, err := c.f.ReadAt(buf, int64(i)*int64(4*n)); err != nil {
		return nil, nil, nil, fmt.Errorf("shlpt: reading the negatives cache %s: %w", c.f.Name(), err)
	}
	v := make([]float32, n)
	for k := range v {
		v[k] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*k:]))
	}
	h := c.P * c.T * c.D
	return v[:h], v[h : h+c.P*c.F], v[h+c.P*c.F:], nil
}

// negativePasses runs the no-gradient passes for one batch: with each pool
// prompt alone, the hidden states (B, P, T, d) and first-position
// activations (B, P, F) as host arrays, and the no-prompt activation s0
// (B, F). The model's dropout is as the caller set it.
func (s *SHLPT) negativePasses(b *t5.Batch) (hid, act, s0 []float32, err error) {
	m := s.env.Model
	e := m.Engine()
	defer e.NoGrad()()
	P := len(s.pool)
	B, T := b.DecoderInputIDs.Dim(0), b.DecoderInputIDs.Dim(1)
	D, F := m.Config.DModel, m.Config.DFF
	hid = make([]float32, B*P*T*D)
	act = make([]float32, B*P*F)
	sc := e.Scope()
	defer sc.End()
	for j := 0; j < P; j++ {
		out := m.Forward(b, t5.Options{Prompt: s.poolPrompt(j), Hidden: true, FFNActFirst: true})
		h, err1 := readOut(e, out.Hidden)
		a, err2 := readOut(e, out.FFNActFirst)
		out.Release() // now: the next pass reuses its memory
		if err := firstErr(err1, err2); err != nil {
			return nil, nil, nil, err
		}
		for r := 0; r < B; r++ {
			copy(hid[(r*P+j)*T*D:(r*P+j+1)*T*D], h[r*T*D:(r+1)*T*D])
			copy(act[(r*P+j)*F:(r*P+j+1)*F], a[r*F:(r+1)*F])
		}
	}
	out := m.Forward(b, t5.Options{FFNActFirst: true})
	s0, err = readOut(e, out.FFNActFirst)
	return hid, act, s0, err
}

// readOut reads a forward pass's output, or the engine's error when the
// pass failed.
func readOut(e *ag.Engine, t *ag.Tensor) ([]float32, error) {
	if t == nil {
		if err := e.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("shlpt: forward pass returned no output")
	}
	return t.Float32s()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// precomputeNegatives runs the negative passes over the task's training
// set in batches and writes their records to a scratch file.
func (s *SHLPT) precomputeNegatives(t *Task) (*negativeCache, error) {
	m := s.env.Model
	f, err := os.CreateTemp(s.env.Scratch, "negatives-*.bin")
	if err != nil {
		return nil, fmt.Errorf("shlpt: negatives cache: %w", err)
	}
	c := &negativeCache{f: f, P: len(s.pool), T: t.TargetLen, D: m.Config.DModel, F: m.Config.DFF, n: len(t.Train)}
	fail := func(err error) (*negativeCache, error) {
		c.Close()
		return nil, err
	}
	s.env.logf("precomputing negatives: %d examples x %d stored prompts (%.1f MB scratch)",
		c.n, c.P, float64(c.n)*float64(4*c.recordFloats())/1e6)
	rec := c.recordFloats()
	bs := t.EvalBatch
	if bs < 1 {
		bs = t.BatchSize
	}
	for lo := 0; lo < len(t.Train); lo += bs {
		hi := min(lo+bs, len(t.Train))
		inputs, targets := splitExamples(t.Train[lo:hi])
		b, err := m.NewBatch(inputs, targets, t.InputLen, t.TargetLen)
		if err != nil {
			return fail(err)
		}
		hid, act, s0, err := s.negativePasses(b)
		b.Release()
		if err != nil {
			return fail(err)
		}
		B := hi - lo
		P, T, D, F := c.P, c.T, c.D, c.F
		buf := make([]byte, 0, 4*rec*B)
		for r := 0; r < B; r++ {
			buf = appendFloats(buf, hid[r*P*T*D:(r+1)*P*T*D])
			buf = appendFloats(buf, act[r*P*F:(r+1)*P*F])
			buf = appendFloats(buf, s0[r*F:(r+1)*F])
		}
		if _, err := f.WriteAt(buf, int64(lo)*int64(4*rec)); err != nil {
			return fail(fmt.Errorf("shlpt: writing the negatives cache %s: %w", f.Name(), err))
		}
	}
	return c, nil
}

func appendFloats(buf []byte, v []float32) []byte {
	for _, x := range v {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
	}
	return buf
}

// splitExamples returns the inputs and targets of examples.
func splitExamples(exs []Example) (inputs, targets [][]int) {
	inputs = make([][]int, len(exs))
	targets = make([][]int, len(exs))
	for i, ex := range exs {
		inputs[i], targets[i] = ex.Input, ex.Target
	}
	return inputs, targets
}

// ascMask returns ASC's mask of the neurons a prompt must move: m = 1 where
// s0 ≤ 0 (inactive without a prompt), else 0; with signMask (the
// asc-sign-mask quirk) the reference's m = 1 − sign(s0) (2 where s0 < 0,
// possible for gelu).
func ascMask(s0 []float32, signMask bool) []float32 {
	m := make([]float32, len(s0))
	for i, v := range s0 {
		switch {
		case v > 0:
			m[i] = 0
		case signMask && v < 0:
			m[i] = 2
		default:
			m[i] = 1
		}
	}
	return m
}
