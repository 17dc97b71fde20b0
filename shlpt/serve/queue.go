package serve

import (
	"fmt"
	"sync"
	"time"
)

// queue holds the rows waiting for the model, at most limit of them. One
// worker takes batches from it; handlers add the rows of a request all at
// once or not at all.
type queue struct {
	mu     sync.Mutex
	rows   []*job
	since  []time.Time // when each row arrived
	limit  int
	closed bool
	wake   chan struct{} // a row arrived or the queue closed
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, wake: make(chan struct{}, 1)}
}

// errQueueFull and errClosed are why push refuses rows.
var (
	errQueueFull = fmt.Errorf("the queue is full")
	errClosed    = fmt.Errorf("the server is shutting down")
)

// push adds the rows of one request, or none of them when they do not fit.
func (q *queue) push(rows []*job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errClosed
	}
	if len(q.rows)+len(rows) > q.limit {
		return errQueueFull
	}
	now := time.Now()
	for _, r := range rows {
		q.rows = append(q.rows, r)
		q.since = append(q.since, now)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// depth is the number of rows waiting.
func (q *queue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.rows)
}

// close refuses new rows; the worker finishes the waiting ones.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// batchLimits bound a batch: rows, and encoder positions (cost of the
// rows and the longest row's prompt and input).
type batchLimits struct {
	rows, tokens int
	window       time.Duration
	cost         func(rows, longest int) int
}

// next waits for a batch: once a row has waited the window (or a full
// batch is waiting) it takes rows in arrival order while the batch stays
// within lim; rows whose request has ended are answered and dropped. It
// returns nil when the queue is closed and empty.
func (q *queue) next(lim batchLimits) []*job {
	for {
		q.mu.Lock()
		if len(q.rows) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return nil
			}
			<-q.wake
			continue
		}
		wait := time.Until(q.since[0].Add(lim.window))
		if wait > 0 && len(q.rows) < lim.rows && !q.closed {
			q.mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.wake:
				t.Stop()
			}
			continue
		}
		var batch []*job
		longest, k := 0, 0
		for ; k < len(q.rows) && len(batch) < lim.rows; k++ {
			r := q.rows[k]
			if r.ctx.Err() != nil {
				r.res.err = r.ctx.Err()
				r.done()
				continue
			}
			n := r.task.Len + len(r.ids)
			if len(batch) > 0 && lim.cost(len(batch)+1, max(longest, n)) > lim.tokens {
				break
			}
			longest = max(longest, n)
			batch = append(batch, r)
		}
		q.rows = append(q.rows[:0], q.rows[k:]...)
		q.since = append(q.since[:0], q.since[k:]...)
		q.mu.Unlock()
		if len(batch) > 0 {
			return batch
		}
	}
}
