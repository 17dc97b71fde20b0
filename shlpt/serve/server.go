package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/export"
	"github.com/shlpt-vk/shlpt-vk/t5"
	"github.com/shlpt-vk/shlpt-vk/t5/tokenizer"
)

// Options configure a server. Zero values take the defaults of
// DefaultOptions.
type Options struct {
	// Sources are run directories, imported folders and PEFT adapter
	// folders; every task prompt they hold is served.
	Sources []string
	// Model, Tokenizer and Weights replace the sources' model folder,
	// tokenizer folder and weight storage ("": the first source's).
	Model, Tokenizer, Weights string
	Engine                    *ag.Engine
	// MaxBatch bounds the rows of one forward pass, MaxBatchTokens its
	// encoder positions (rows × the longest prompt and input); Window is
	// how long the first waiting row waits for others to join it.
	MaxBatch, MaxBatchTokens int
	Window                   time.Duration
	// QueueLimit bounds the rows waiting; a request that does not fit is
	// answered 503 with Retry-After.
	QueueLimit int
	// MaxBodyBytes, MaxInputs, MaxInputBytes and MaxTokens bound a
	// request: its body, its inputs, each input's text (413 beyond), and
	// max_tokens (400 beyond).
	MaxBodyBytes  int64
	MaxInputs     int
	MaxInputBytes int
	MaxTokens     int
	// Timeout bounds a request's time in the server (504 beyond).
	Timeout time.Duration
	// Programs is how many recorded encoder passes (one per shape bucket)
	// are kept; 0 (the default) runs every pass eagerly. On lavapipe a
	// replayed pass is 0.8–1.0 times as long as an eager one while each
	// program holds a block of device memory (docs/performance.md).
	Programs int
	// Logf reports the server's events (nil: none).
	Logf func(format string, args ...any)
}

// DefaultOptions are the defaults of the serving limits.
func DefaultOptions() Options {
	return Options{MaxBatch: 32, MaxBatchTokens: 16384, Window: 5 * time.Millisecond, QueueLimit: 256,
		MaxBodyBytes: 1 << 20, MaxInputs: 64, MaxInputBytes: 64 << 10, MaxTokens: 512, Timeout: 30 * time.Second}
}

// Server serves the tasks of its sources.
type Server struct {
	opt      Options
	model    *t5.Model
	tok      Tokenizer
	table    *ag.Tensor // (ΣLp, d): every task's prompt
	tasks    map[string]*Task
	programs *programCache // nil: eager
	q        *queue
	met      *metrics
	worker   sync.WaitGroup
	started  time.Time
	closing  sync.Once
	// passTime is a running mean of a forward pass's time in nanoseconds
	// (for Retry-After).
	passTime atomic.Int64
}

// New loads the model and every task prompt of o.Sources and starts the
// worker that runs batches.
func New(o Options) (*Server, error) {
	def := DefaultOptions()
	for _, f := range []struct{ v, d *int }{{&o.MaxBatch, &def.MaxBatch}, {&o.MaxBatchTokens, &def.MaxBatchTokens},
		{&o.QueueLimit, &def.QueueLimit}, {&o.MaxInputs, &def.MaxInputs}, {&o.MaxInputBytes, &def.MaxInputBytes}, {&o.MaxTokens, &def.MaxTokens}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
		if *f.v < 0 {
			return nil, fmt.Errorf("serve: negative limit %d", *f.v)
		}
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = def.MaxBodyBytes
	}
	if o.Window < 0 || o.Timeout < 0 || o.Programs < 0 || o.MaxBodyBytes < 0 {
		return nil, errors.New("serve: negative window, timeout, program count or body limit")
	}
	if o.Timeout == 0 {
		o.Timeout = def.Timeout
	}
	if o.Engine == nil {
		return nil, errors.New("serve: no engine")
	}
	if len(o.Sources) == 0 {
		return nil, errors.New("serve: nothing to serve: name run directories, imported folders or PEFT adapters")
	}
	s := &Server{opt: o, tasks: map[string]*Task{}, q: newQueue(o.QueueLimit), met: newMetrics(o.MaxBatch), started: time.Now()}
	if err := s.load(); err != nil {
		s.release()
		return nil, err
	}
	if o.Programs > 0 {
		s.programs = newProgramCache(s, o.Programs)
	}
	s.worker.Add(1)
	go s.work()
	return s, nil
}

// load reads the sources, checks that they fit one model, loads it and
// uploads the prompt table.
func (s *Server) load() error {
	o := &s.opt
	type loaded struct {
		tp     export.TaskPrompt
		source string
	}
	var all []loaded
	from := map[string]string{}
	for _, src := range o.Sources {
		tps, err := export.Load(src)
		if err != nil {
			return err
		}
		for _, tp := range tps {
			if prev, dup := from[tp.Card.Task]; dup {
				return fmt.Errorf("task %s is in %s and in %s: serve one of them, or import one under another name (shlpt-vk import --task)", tp.Card.Task, prev, src)
			}
			from[tp.Card.Task] = src
			all = append(all, loaded{tp, src})
		}
	}
	first := all[0].tp.Card
	model, tokDir, weights := o.Model, o.Tokenizer, o.Weights
	if model == "" {
		model = first.Model
	}
	if tokDir == "" {
		tokDir = first.Tokenizer
	}
	if tokDir == "" {
		tokDir = model
	}
	if weights == "" {
		weights = first.Weights
	}
	for _, l := range all {
		c := l.tp.Card
		if o.Model == "" && c.Model != model {
			return fmt.Errorf("task %s (%s) was learned on the model %s, task %s on %s: serve tasks of one model, or name it with --model", c.Task, l.source, c.Model, first.Task, model)
		}
		if o.Weights == "" && c.Weights != "" && weights != "" && c.Weights != weights {
			return fmt.Errorf("task %s (%s) was evaluated with %s weights, task %s with %s: name one with --weights", c.Task, l.source, c.Weights, first.Task, weights)
		}
	}
	if weights == "" {
		weights = "f32"
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	s.tok = tok
	w, err := t5.ParseWeights(weights)
	if err != nil {
		return err
	}
	if s.model, err = t5.LoadWith(o.Engine, model, t5.LoadOptions{Weights: w}); err != nil {
		return err
	}
	s.model.SetTraining(false)
	d := s.model.Config.DModel
	var table []float32
	for _, l := range all {
		p := l.tp.Prompt
		if p.D != d {
			return fmt.Errorf("%s: the prompt of task %s is %d wide, the model %s has d_model %d", l.source, l.tp.Card.Task, p.D, model, d)
		}
		t, err := newTask(l.tp.Card, l.source, tok)
		if err != nil {
			return err
		}
		t.Offset, t.Len = len(table)/d, p.Lp
		for _, ids := range t.labelIDs {
			for _, id := range ids {
				if id >= s.model.Config.VocabSize {
					return fmt.Errorf("task %s: label id %d is outside the model's vocabulary of %d: use the model's own tokenizer", t.Card.Task, id, s.model.Config.VocabSize)
				}
			}
		}
		table = append(table, p.Data...)
		s.tasks[t.Card.Task] = t
	}
	e := o.Engine
	s.table = e.FromFloat32(table, len(table)/d, d)
	if err := e.Err(); err != nil {
		return err
	}
	s.logf("serving %d tasks of %d sources on %s: %v", len(s.tasks), len(o.Sources), model, taskNames(s.tasks))
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.opt.Logf != nil {
		s.opt.Logf(format, args...)
	}
}

// work runs batches until the queue is closed and empty.
func (s *Server) work() {
	defer s.worker.Done()
	lim := batchLimits{rows: s.opt.MaxBatch, tokens: s.opt.MaxBatchTokens, window: s.opt.Window, cost: s.cost}
	for {
		batch := s.q.next(lim)
		if batch == nil {
			return
		}
		began := time.Now()
		err := s.compute(batch)
		took := time.Since(began).Nanoseconds()
		if old := s.passTime.Load(); old > 0 {
			took = (4*old + took) / 5
		}
		s.passTime.Store(took)
		if err != nil {
			s.logf("batch of %d rows: %v", len(batch), err)
			s.opt.Engine.ClearErr()
		}
		tasks := map[*Task]bool{}
		for _, j := range batch {
			tasks[j.task] = true
		}
		// Counted before any answer goes out, so that /metrics read after
		// an answer includes its pass.
		s.met.pass(len(batch), len(tasks))
		for _, j := range batch {
			if err != nil {
				j.res.err = err
			}
			j.done()
		}
	}
}

// cost is the encoder positions of a batch of rows whose longest row
// (prompt and input) is longest: with recorded programs, of its shape
// bucket.
func (s *Server) cost(rows, longest int) int {
	if s.programs != nil {
		return bucketRows(rows, s.opt.MaxBatch) * bucketLen(longest)
	}
	return rows * longest
}

// Handler is the server's HTTP interface.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/models", s.endpoint("/v1/models", s.models))
	mux.HandleFunc("/v1/completions", s.endpoint("/v1/completions", s.completions))
	mux.HandleFunc("/v1/classify", s.endpoint("/v1/classify", s.classify))
	mux.HandleFunc("/healthz", s.handleHealth)
	mux.HandleFunc("/metrics", s.handleMetrics)
	return mux
}

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, lets the requests in flight finish
// (within grace), finishes the rows they wait for, and frees the model.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	// ReadTimeout bounds the reading of a request, body included, as
	// Timeout bounds its time in the server.
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.opt.Timeout}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	s.logf("shutting down: finishing the requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.Close()
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// Close stops taking rows, finishes the waiting ones and frees the model.
func (s *Server) Close() {
	s.closing.Do(func() {
		s.q.close()
		s.worker.Wait()
		s.release()
	})
}

func (s *Server) release() {
	if s.programs != nil {
		s.programs.release()
	}
	s.table.Release()
	if s.model != nil {
		s.model.Release()
	}
}
