package serve

import (
	"slices"
	"sync/atomic"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/t5"
)

// Shape buckets of recorded encoder passes: rows up to the next power of
// two (at most the batch limit), positions up to the next multiple of
// lenStep. A padded row or position changes no other row's result.
const lenStep = 16

func bucketRows(n, limit int) int {
	b := 1
	for b < n {
		b *= 2
	}
	return max(n, min(b, limit))
}

func bucketLen(n int) int { return (n + lenStep - 1) / lenStep * lenStep }

// programCache keeps recorded encoder passes, one per shape bucket, the
// least recently used dropped beyond limit. A pass that replays uploads
// only the rows' layout (t5.WriteRowBatch).
type programCache struct {
	s     *Server
	limit int
	slots []*encSlot // least recently used first
	// Counters read by /metrics.
	kept, runs, records atomic.Int64
}

// encSlot is the recorded encoder pass for B rows of T positions: the
// layout it reads and the output it writes.
type encSlot struct {
	B, T      int
	rb        *t5.RowBatch
	prog      *ag.Program
	enc, mask *ag.Tensor
}

func newProgramCache(s *Server, limit int) *programCache {
	return &programCache{s: s, limit: limit}
}

func (sl *encSlot) release() {
	if sl.prog != nil {
		sl.prog.Release()
	}
	sl.rb.Release()
}

func (c *programCache) release() {
	for _, sl := range c.slots {
		sl.release()
	}
	c.slots = nil
	c.kept.Store(0)
}

func (c *programCache) stats() (kept, runs, records int64) {
	return c.kept.Load(), c.runs.Load(), c.records.Load()
}

// encode runs the encoder on rows through the program of their bucket
// (recorded on first use), the rows filled up with copies of the last
// one. The output (the bucket's rows; the first len(rows) are rows') stays
// the program's: release does nothing.
func (c *programCache) encode(rows []t5.PromptRow) (enc, mask *ag.Tensor, release func(), err error) {
	s := c.s
	m := s.model
	longest := 0
	for _, r := range rows {
		longest = max(longest, r.Len+len(r.Input))
	}
	B, T := bucketRows(len(rows), s.opt.MaxBatch), bucketLen(longest)
	full := rows[:len(rows):len(rows)]
	for len(full) < B {
		full = append(full, rows[len(rows)-1])
	}
	P := s.table.Dim(0)
	i := slices.IndexFunc(c.slots, func(sl *encSlot) bool { return sl.B == B && sl.T == T })
	var sl *encSlot
	if i >= 0 {
		sl = c.slots[i]
		c.slots = append(slices.Delete(c.slots, i, i+1), sl)
		if err := m.WriteRowBatch(sl.rb, full, P); err != nil {
			return nil, nil, nil, err
		}
	} else {
		sl = &encSlot{B: B, T: T}
		if sl.rb, err = m.NewRowBatch(full, T, P); err != nil {
			return nil, nil, nil, err
		}
		e := m.Engine()
		sl.prog, err = e.Capture(func() error {
			sl.enc, sl.mask = m.EncodeRows(s.table, sl.rb)
			return e.Err()
		})
		if err != nil {
			sl.release()
			return nil, nil, nil, err
		}
		c.records.Add(1)
		c.slots = append(c.slots, sl)
		for len(c.slots) > c.limit {
			c.slots[0].release()
			c.slots = slices.Delete(c.slots, 0, 1)
		}
		c.kept.Store(int64(len(c.slots)))
	}
	if err := sl.prog.Run(); err != nil {
		return nil, nil, nil, err
	}
	c.runs.Add(1)
	return sl.enc, sl.mask, func() {}, nil
}
