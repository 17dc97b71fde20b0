package serve

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
)

// metrics are the server's counters, written in the Prometheus text
// exposition format (version 0.0.4) at /metrics.
type metrics struct {
	mu       sync.Mutex
	requests map[requestKey]int64
	latency  map[string]*histogram // by endpoint
	batch    *histogram            // rows per forward pass
	tasks    *histogram            // different tasks per forward pass
	batches  int64
	rows     int64
}

// requestKey labels a request counter.
type requestKey struct {
	endpoint, task string
	code           int
}

// histogram counts observations into cumulative buckets.
type histogram struct {
	bounds []float64
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      int64
}

func newHistogram(bounds ...float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]int64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound ≥ v
	h.counts[i]++
	h.sum += v
	h.n++
}

// latencyBounds are the request latency buckets in seconds.
var latencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func newMetrics(maxBatch int) *metrics {
	var rows []float64
	for b := 1; b < maxBatch; b *= 2 {
		rows = append(rows, float64(b))
	}
	rows = append(rows, float64(maxBatch))
	return &metrics{requests: map[requestKey]int64{}, latency: map[string]*histogram{},
		batch: newHistogram(rows...), tasks: newHistogram(1, 2, 3, 4, 6, 8, 12, 16)}
}

// request counts a finished request.
func (m *metrics) request(endpoint, task string, code int, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{endpoint, task, code}]++
	h := m.latency[endpoint]
	if h == nil {
		h = newHistogram(latencyBounds...)
		m.latency[endpoint] = h
	}
	h.observe(seconds)
}

// pass counts a forward pass of rows rows over tasks different tasks.
func (m *metrics) pass(rows, tasks int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batch.observe(float64(rows))
	m.tasks.observe(float64(tasks))
	m.batches++
	m.rows += int64(rows)
}

// gauges are values read when /metrics is asked.
type gauges struct {
	queueDepth, queueLimit               int
	allocated, reserved, peak            int64
	programs, programRuns, programRecord int64
}

// write writes every metric in the text format.
func (m *metrics) write(w io.Writer, g gauges) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# HELP shlpt_requests_total Requests answered, by endpoint, task and HTTP status.\n# TYPE shlpt_requests_total counter\n")
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.endpoint != b.endpoint {
			return a.endpoint < b.endpoint
		}
		if a.task != b.task {
			return a.task < b.task
		}
		return a.code < b.code
	})
	for _, k := range keys {
		p("shlpt_requests_total{endpoint=%s,task=%s,code=\"%d\"} %d\n", quote(k.endpoint), quote(k.task), k.code, m.requests[k])
	}
	p("# HELP shlpt_request_duration_seconds Time from a request's arrival to its answer.\n# TYPE shlpt_request_duration_seconds histogram\n")
	var eps []string
	for e := range m.latency {
		eps = append(eps, e)
	}
	sort.Strings(eps)
	for _, e := range eps {
		m.latency[e].write(w, "shlpt_request_duration_seconds", "endpoint="+quote(e)+",")
	}
	p("# HELP shlpt_batch_rows Rows (inputs, of any tasks) per forward pass.\n# TYPE shlpt_batch_rows histogram\n")
	m.batch.write(w, "shlpt_batch_rows", "")
	p("# HELP shlpt_batch_tasks Different tasks per forward pass.\n# TYPE shlpt_batch_tasks histogram\n")
	m.tasks.write(w, "shlpt_batch_tasks", "")
	p("# HELP shlpt_batches_total Forward passes.\n# TYPE shlpt_batches_total counter\nshlpt_batches_total %d\n", m.batches)
	p("# HELP shlpt_rows_total Rows computed.\n# TYPE shlpt_rows_total counter\nshlpt_rows_total %d\n", m.rows)
	p("# HELP shlpt_queue_depth Rows waiting for the model.\n# TYPE shlpt_queue_depth gauge\nshlpt_queue_depth %d\n", g.queueDepth)
	p("# HELP shlpt_queue_limit Rows the queue holds at most.\n# TYPE shlpt_queue_limit gauge\nshlpt_queue_limit %d\n", g.queueLimit)
	p("# HELP shlpt_device_memory_bytes Device memory: allocated by live buffers, reserved in blocks, peak allocated.\n# TYPE shlpt_device_memory_bytes gauge\n")
	p("shlpt_device_memory_bytes{kind=\"allocated\"} %d\nshlpt_device_memory_bytes{kind=\"reserved\"} %d\nshlpt_device_memory_bytes{kind=\"peak\"} %d\n",
		g.allocated, g.reserved, g.peak)
	p("# HELP shlpt_programs Recorded programs kept (one per shape bucket).\n# TYPE shlpt_programs gauge\nshlpt_programs %d\n", g.programs)
	p("# HELP shlpt_program_records_total Programs recorded.\n# TYPE shlpt_program_records_total counter\nshlpt_program_records_total %d\n", g.programRecord)
	p("# HELP shlpt_program_runs_total Forward passes replayed from a recorded program.\n# TYPE shlpt_program_runs_total counter\nshlpt_program_runs_total %d\n", g.programRuns)
}

// write writes the histogram's cumulative buckets, sum and count, with
// labels (ending with a comma when not empty) before le.
func (h *histogram) write(w io.Writer, name, labels string) {
	c := int64(0)
	for i, b := range h.bounds {
		c += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{%sle=\"%s\"} %d\n", name, labels, formatBound(b), c)
	}
	c += h.counts[len(h.bounds)]
	fmt.Fprintf(w, "%s_bucket{%sle=\"+Inf\"} %d\n", name, labels, c)
	l := strings.TrimSuffix(labels, ",")
	if l != "" {
		l = "{" + l + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %g\n%s_count%s %d\n", name, l, h.sum, name, l, h.n)
}

func formatBound(b float64) string {
	if b == math.Trunc(b) {
		return fmt.Sprintf("%.0f", b)
	}
	return fmt.Sprintf("%g", b)
}

// quote is a label value in the text format: backslash, quote and newline
// escaped.
func quote(s string) string { return `"` + labelEscaper.Replace(s) + `"` }

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
