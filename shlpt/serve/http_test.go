package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// apiErr is the error answer's body.
type apiErr struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// Bad requests get the status the API promises and a JSON error naming
// the field.
func TestRequestErrors(t *testing.T) {
	_, hs := start(t, Options{MaxBodyBytes: 4096, MaxInputs: 3, MaxInputBytes: 300, MaxTokens: 16})
	long := strings.Repeat("word ", 100)
	for _, c := range []struct {
		path   string
		body   string
		status int
		param  string
		says   string
	}{
		{"/v1/completions", `{"model": "nope", "prompt": "x"}`, 404, "model", `no task "nope"`},
		{"/v1/completions", `{"prompt": "x"}`, 400, "model", "model is missing"},
		{"/v1/completions", `{"model": "sst2", "prompt": "x", "top_p": 1}`, 400, "top_p", `unknown field "top_p"`},
		{"/v1/completions", `{"model": "sst2", "prompt": "x", "max_tokens": "3"}`, 400, "max_tokens", "max_tokens must be an integer"},
		{"/v1/completions", `{"model": "sst2", "prompt": "x", "max_tokens": 17}`, 400, "max_tokens", "between 1 and 16"},
		{"/v1/classify", `{"model": "sst2", "input": "x", "raw": 1}`, 400, "raw", "raw must be true or false"},
		{"/v1/completions", `{"model": "sst2", "prompt": "x", "stream": true}`, 400, "stream", "not supported"},
		{"/v1/completions", `{"model": "sst2", "prompt": "x", "n": 2}`, 400, "n", "n = 1"},
		{"/v1/completions", `{"model": "sst2"}`, 400, "prompt", "prompt is missing"},
		{"/v1/completions", `{"model": "sst2", "prompt": [1]}`, 400, "prompt[0]", "must be a string or an object"},
		{"/v1/completions", `{"model": "sst2", "prompt": []}`, 400, "prompt", "empty list"},
		{"/v1/completions", `{"model": "cb", "prompt": "only one"}`, 400, "prompt", "premise, hypothesis"},
		{"/v1/completions", `{"model": "cb", "prompt": {"premise": "a", "topic": "b"}}`, 400, "prompt", `no field "topic"`},
		{"/v1/completions", `{"model": "cb", "prompt": {"premise": "a"}}`, 400, "prompt", `"hypothesis" of task cb's template is missing`},
		{"/v1/completions", `{"model": "cb", "prompt": {"premise": "a", "hypothesis": "b"}, "raw": true}`, 400, "prompt", "raw: true takes text"},
		{"/v1/completions", `{"model": "sst2", "prompt": "x"`, 400, "", "not JSON"},
		{"/v1/completions", `["sst2", "x"]`, 400, "", "must be a JSON object, not a JSON array"},
		{"/v1/completions", `{"model": "sst2", "prompt": ["a", "b", "c", "d"]}`, 413, "prompt", "more than the 3"},
		{"/v1/completions", `{"model": "sst2", "prompt": "` + long + `"}`, 413, "prompt", "more than the 300"},
		{"/v1/classify", `{"model": "sst2", "input": "` + strings.Repeat(long, 10) + `"}`, 413, "", "exceeds 4096 bytes"},
		{"/v1/classify", `{"model": "sst2", "prompt": "x"}`, 400, "prompt", `unknown field "prompt"`},
	} {
		code, _, body := post(t, hs.URL+c.path, c.body, nil)
		var e apiErr
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s: the error is not JSON: %s", c.body[:min(60, len(c.body))], body)
			continue
		}
		param := ""
		if e.Error.Param != nil {
			param = *e.Error.Param
		}
		if code != c.status || param != c.param || !strings.Contains(e.Error.Message, c.says) {
			t.Errorf("%s: %d param %q %q, want %d param %q saying %q", c.body[:min(60, len(c.body))], code, param, e.Error.Message, c.status, c.param, c.says)
		}
	}
	resp, err := http.Get(hs.URL + "/v1/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/completions: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// A request that does not fit the queue is refused at once with 503 and
// Retry-After; one that waits longer than the timeout gets 504; neither
// disturbs the server.
func TestQueueLimitAndTimeout(t *testing.T) {
	s, hs := start(t, Options{QueueLimit: 2, Window: time.Second, Timeout: 100 * time.Millisecond})
	code, h, body := post(t, hs.URL+"/v1/classify", `{"model": "sst2", "input": ["a", "b", "c"]}`, nil)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(body), "queue_full") {
		t.Errorf("3 rows into a queue of 2: %d Retry-After %q %s", code, h.Get("Retry-After"), body)
	}
	if n, err := strconv.Atoi(h.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q is not a positive number of seconds", h.Get("Retry-After"))
	}
	// The row waits a second for another to join it: longer than 100 ms.
	code, _, body = post(t, hs.URL+"/v1/classify", `{"model": "sst2", "input": "a"}`, nil)
	if code != 504 || !strings.Contains(string(body), "timeout") {
		t.Errorf("a request past its timeout: %d %s", code, body)
	}
	// The row is dropped when the worker comes to it: never computed.
	deadline := time.Now().Add(10 * time.Second)
	for s.q.depth() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.met.mu.Lock()
	rows := s.met.rows
	s.met.mu.Unlock()
	if d := s.q.depth(); d != 0 || rows != 0 {
		t.Errorf("after the timeout: %d rows queued, %d computed", d, rows)
	}
}

// /v1/models lists every task with its label words and metric; /healthz
// answers; /metrics counts requests by task and status, the batch sizes
// and the device memory in the Prometheus text format.
func TestModelsHealthMetrics(t *testing.T) {
	_, hs := start(t, Options{})
	resp, err := http.Get(hs.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct {
		Object string      `json:"object"`
		Data   []modelInfo `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&models); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
		if m.ID == "cb" && (strings.Join(m.Labels, ",") != "entailment,contradiction,neutral" || m.Metric == "" || m.Decode != "rank" || m.PromptLen != 4) {
			t.Errorf("cb: %+v", m)
		}
		if m.ID == "rte" && (m.PromptLen != 8 || m.Method != "progprompt" || m.Decode != "beam") {
			t.Errorf("rte: %+v", m)
		}
	}
	if models.Object != "list" || strings.Join(ids, ",") != "cb,copa,rte,sst2" {
		t.Errorf("models %s: %v", models.Object, ids)
	}
	resp, err = http.Get(hs.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	post(t, hs.URL+"/v1/classify", `{"model": "sst2", "input": ["good", "bad"]}`, nil)
	post(t, hs.URL+"/v1/classify", `{"model": "nope", "input": "x"}`, nil)
	resp, err = http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	found := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			t.Errorf("metrics line %q", l)
			continue
		}
		if _, err := strconv.ParseFloat(l[i+1:], 64); err != nil {
			t.Errorf("metrics line %q: %v", l, err)
		}
		found[l[:i]] = l[i+1:]
	}
	for k, v := range map[string]string{
		`shlpt_requests_total{endpoint="/v1/classify",task="sst2",code="200"}`: "1",
		`shlpt_requests_total{endpoint="/v1/classify",task="",code="404"}`:     "1",
		`shlpt_batch_rows_count`:          "1",
		`shlpt_batch_rows_bucket{le="2"}`: "1",
		`shlpt_rows_total`:                "2",
		`shlpt_queue_depth`:               "0",
	} {
		if found[k] != v {
			t.Errorf("%s is %q, want %s", k, found[k], v)
		}
	}
	for _, k := range []string{`shlpt_device_memory_bytes{kind="allocated"}`, `shlpt_request_duration_seconds_bucket{endpoint="/v1/classify",le="+Inf"}`} {
		if v, _ := strconv.ParseFloat(found[k], 64); v <= 0 {
			t.Errorf("%s is %q", k, found[k])
		}
	}
}

// On shutdown the server stops accepting connections, answers the
// requests in flight and then returns.
func TestGracefulShutdown(t *testing.T) {
	a, b := testRuns(t)
	s, err := New(Options{Sources: []string{a, b}, Engine: newEngine(t), Window: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 10*time.Second) }()
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = post(t, url+"/v1/classify", `{"model": "cb", "input": {"premise": "p", "hypothesis": "h"}}`, nil)
		}()
	}
	// The rows wait 2 s for a batch: stop once all three are in flight.
	deadline := time.Now().Add(10 * time.Second)
	for s.q.depth() < len(codes) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d in flight at shutdown: %d", i, c)
		}
	}
	if _, err := http.Get(url + "/healthz"); err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after shutdown: %v, want connection refused", err)
	}
}

// A body that arrives more slowly than the timeout is cut off with 408:
// reading a request is bounded as its time in the server is.
func TestSlowBody(t *testing.T) {
	a, b := testRuns(t)
	s, err := New(Options{Sources: []string{a, b}, Engine: newEngine(t), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 10*time.Second) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Headers promising 100 bytes, then only the first of them.
	if _, err := c.Write([]byte("POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "did not arrive within 300ms") {
		t.Errorf("a body slower than the timeout: %d %s", resp.StatusCode, body)
	}
}
