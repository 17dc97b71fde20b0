package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// apiError is an error answer in the OpenAI form:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	status  int
	message string
	typ     string
	param   string
	code    string
	header  map[string]string
}

func (e *apiError) Error() string { return e.message }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, message: fmt.Sprintf(format, args...), typ: "invalid_request_error", param: param}
}

func tooLarge(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, message: fmt.Sprintf(format, args...), typ: "invalid_request_error", param: param, code: "request_too_large"}
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the answer failed","type":"server_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) int {
	for k, v := range e.header {
		w.Header().Set(k, v)
	}
	body := map[string]any{"message": e.message, "type": e.typ, "param": nil, "code": nil}
	if e.param != "" {
		body["param"] = e.param
	}
	if e.code != "" {
		body["code"] = e.code
	}
	writeJSON(w, e.status, map[string]any{"error": body})
	return e.status
}

// decode reads a JSON request body of at most the body limit into v,
// refusing unknown fields; errors name the field.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if r.Method != http.MethodPost {
		return &apiError{status: http.StatusMethodNotAllowed, message: r.URL.Path + " takes POST", typ: "invalid_request_error",
			header: map[string]string{"Allow": "POST"}}
	}
	body := http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes)
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(body); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return tooLarge("", "the request body exceeds %d bytes", s.opt.MaxBodyBytes)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return &apiError{status: http.StatusRequestTimeout, message: fmt.Sprintf("the request did not arrive within %v", s.opt.Timeout),
				typ: "invalid_request_error", code: "timeout"}
		}
		return badRequest("", "reading the request body: %v", err)
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return badRequest("", "the body must be a JSON object, not a JSON %s", te.Value)
		case errors.As(err, &te):
			f := strings.TrimPrefix(te.Field, "taskRequest.") // the embedded common fields
			return badRequest(f, "field %s must be %s, not a JSON %s", f, kindName(te.Type.Kind().String()), te.Value)
		case errors.As(err, &se):
			return badRequest("", "the body is not JSON: %v (at byte %d)", err, se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return badRequest("", "the body is not JSON: it ends inside a value")
		case errors.Is(err, io.EOF):
			return badRequest("", "the body is empty: send a JSON object")
		}
		msg := err.Error()
		if f, ok := unknownField(msg); ok {
			return badRequest(f, "unknown field %q", f)
		}
		return badRequest("", "the body is not a JSON object: %v", err)
	}
	if dec.More() {
		return badRequest("", "the body holds more than one JSON value")
	}
	return nil
}

// unknownField extracts the field of encoding/json's unknown-field error.
func unknownField(msg string) (string, bool) {
	const p = `json: unknown field "`
	if len(msg) > len(p) && msg[:len(p)] == p {
		f, err := strconv.Unquote(msg[len(p)-1:])
		return f, err == nil
	}
	return "", false
}

func kindName(k string) string {
	switch k {
	case "int", "int64":
		return "an integer"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	return "a " + k
}

// inputs parses a prompt or input field: a string, an object of template
// fields, or a list of either.
func (s *Server) inputs(raw json.RawMessage, param string) ([]Input, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest(param, "%s is missing", param)
	}
	var list []json.RawMessage
	items := []json.RawMessage{raw}
	listed := raw[0] == '['
	if listed {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, badRequest(param, "%s: %v", param, err)
		}
		if len(list) == 0 {
			return nil, badRequest(param, "%s is an empty list", param)
		}
		items = list
	}
	if len(items) > s.opt.MaxInputs {
		return nil, tooLarge(param, "%s holds %d inputs, more than the %d a request may hold", param, len(items), s.opt.MaxInputs)
	}
	out := make([]Input, len(items))
	for i, it := range items {
		p := param
		if listed {
			p = fmt.Sprintf("%s[%d]", param, i)
		}
		var text string
		var fields map[string]string
		switch {
		case json.Unmarshal(it, &text) == nil:
			out[i] = Input{Text: text}
		case json.Unmarshal(it, &fields) == nil && fields != nil:
			out[i] = Input{Fields: fields}
		default:
			return nil, badRequest(p, "%s must be a string or an object of template fields with string values", p)
		}
		n := len(out[i].Text)
		for _, v := range out[i].Fields {
			n += len(v)
		}
		if n > s.opt.MaxInputBytes {
			return nil, tooLarge(p, "%s is %d bytes, more than the %d an input may hold", p, n, s.opt.MaxInputBytes)
		}
	}
	return out, nil
}

// lookup returns the task a request names.
func (s *Server) lookup(name string) (*Task, *apiError) {
	if name == "" {
		return nil, badRequest("model", "model is missing: name a task (GET /v1/models lists them)")
	}
	t, ok := s.tasks[name]
	if !ok {
		return nil, &apiError{status: http.StatusNotFound, message: fmt.Sprintf("no task %q is served (GET /v1/models lists them)", name),
			typ: "invalid_request_error", param: "model", code: "model_not_found"}
	}
	return t, nil
}

// jobs tokenizes the inputs of a request for task as training did.
func (s *Server) jobs(ctx context.Context, t *Task, ins []Input, raw bool, param string, kind jobKind, maxTokens int) ([]*job, int, *apiError) {
	out := make([]*job, len(ins))
	tokens := 0
	for i, in := range ins {
		p := param
		if len(ins) > 1 {
			p = fmt.Sprintf("%s[%d]", param, i)
		}
		text, err := t.text(in, raw, p)
		if err != nil {
			return nil, 0, badRequest(p, "%v", err)
		}
		enc, err := tasks.EncodeLen(s.tok, tasks.Example{Input: text}, t.Card.MaxInputLen, t.Card.TargetLen)
		if err != nil {
			return nil, 0, badRequest(p, "%s: %v", p, err)
		}
		for _, id := range enc.Input {
			if id >= s.model.Config.VocabSize {
				return nil, 0, badRequest(p, "%s: token id %d is outside the model's vocabulary of %d", p, id, s.model.Config.VocabSize)
			}
		}
		tokens += len(enc.Input)
		out[i] = &job{ctx: ctx, task: t, ids: enc.Input, kind: kind, maxTokens: maxTokens}
	}
	return out, tokens, nil
}

// run queues the rows and waits for them, or for the request's end.
func (s *Server) run(ctx context.Context, rows []*job) *apiError {
	var wg sync.WaitGroup
	wg.Add(len(rows))
	for _, r := range rows {
		r.done = wg.Done
	}
	if err := s.q.push(rows); err != nil {
		if errors.Is(err, errClosed) {
			return &apiError{status: http.StatusServiceUnavailable, message: err.Error(), typ: "server_error", code: "shutting_down"}
		}
		return &apiError{status: http.StatusServiceUnavailable, message: fmt.Sprintf("%v (%d rows wait): retry later", err, s.q.depth()),
			typ: "server_error", code: "queue_full", header: map[string]string{"Retry-After": strconv.Itoa(s.retryAfter())}}
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		return &apiError{status: http.StatusGatewayTimeout, message: fmt.Sprintf("the request took longer than %v", s.opt.Timeout),
			typ: "server_error", code: "timeout"}
	}
	for _, r := range rows {
		if r.res.err != nil {
			if errors.Is(r.res.err, context.DeadlineExceeded) || errors.Is(r.res.err, context.Canceled) {
				return &apiError{status: http.StatusGatewayTimeout, message: fmt.Sprintf("the request took longer than %v", s.opt.Timeout),
					typ: "server_error", code: "timeout"}
			}
			return &apiError{status: http.StatusInternalServerError, message: r.res.err.Error(), typ: "server_error"}
		}
	}
	return nil
}

// answer reads the inputs of a request for task t from its field param
// (in, raw: skip the template), runs their rows within the request's
// timeout and returns them, answered, with their input tokens.
func (s *Server) answer(r *http.Request, t *Task, in json.RawMessage, param string, raw bool, kind jobKind, maxTokens int) ([]*job, int, *apiError) {
	ins, e := s.inputs(in, param)
	if e != nil {
		return nil, 0, e
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()
	rows, tokens, e := s.jobs(ctx, t, ins, raw, param, kind, maxTokens)
	if e != nil {
		return nil, 0, e
	}
	return rows, tokens, s.run(ctx, rows)
}

// retryAfter estimates in seconds when the queue will have room.
func (s *Server) retryAfter() int {
	per := time.Duration(s.passTime.Load()).Seconds()
	passes := float64(s.q.depth()) / float64(s.opt.MaxBatch)
	return max(1, int(math.Ceil(passes*per)))
}

// taskRequest are the fields every task request has: the task (OpenAI's
// model), raw (skip the task's input template) and OpenAI's user.
type taskRequest struct {
	Model string `json:"model"`
	Raw   bool   `json:"raw"`
	User  string `json:"user"`
}

func (r *taskRequest) request() *taskRequest { return r }

// endpoint counts the answers of a handler that returns the task it
// served ("" when none) and its status.
func (s *Server) endpoint(path string, h func(w http.ResponseWriter, r *http.Request) (string, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		task, code := h(w, r)
		s.met.request(path, task, code, time.Since(start).Seconds())
	}
}

// taskOf decodes a task request's body into req and returns its task.
func (s *Server) taskOf(w http.ResponseWriter, r *http.Request, req interface{ request() *taskRequest }) (*Task, *apiError) {
	if e := s.decode(w, r, req); e != nil {
		return nil, e
	}
	return s.lookup(req.request().Model)
}

type completionRequest struct {
	taskRequest
	Prompt    json.RawMessage `json:"prompt"`
	MaxTokens *int            `json:"max_tokens"`
	N         *int            `json:"n"`
	Stream    bool            `json:"stream"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     *string `json:"logprobs"`
	FinishReason string  `json:"finish_reason"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   usage              `json:"usage"`
}

var requestID atomic.Int64

func (s *Server) completions(w http.ResponseWriter, r *http.Request) (string, int) {
	var req completionRequest
	t, e := s.taskOf(w, r, &req)
	if e != nil {
		return "", writeError(w, e)
	}
	name := t.Card.Task
	switch {
	case req.Stream:
		return name, writeError(w, badRequest("stream", "stream: streamed answers are not supported"))
	case req.N != nil && *req.N != 1:
		return name, writeError(w, badRequest("n", "n: one answer per prompt (n = 1) is supported, not %d", *req.N))
	}
	maxTokens := t.Card.TargetLen - 1 // what eval generates
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
		if maxTokens < 1 || maxTokens > s.opt.MaxTokens {
			return name, writeError(w, badRequest("max_tokens", "max_tokens %d must lie between 1 and %d", maxTokens, s.opt.MaxTokens))
		}
	}
	rows, promptTokens, e := s.answer(r, t, req.Prompt, "prompt", req.Raw, complete, maxTokens)
	if e != nil {
		return name, writeError(w, e)
	}
	resp := completionResponse{ID: fmt.Sprintf("cmpl-%d", requestID.Add(1)), Object: "text_completion", Created: time.Now().Unix(), Model: name}
	resp.Usage.PromptTokens = promptTokens
	for i, row := range rows {
		c := completionChoice{Index: i, FinishReason: "length"}
		n := len(row.res.ids)
		if row.res.scores != nil {
			c.Text, n = t.Card.Labels[row.res.label], len(t.labelIDs[row.res.label])
		} else {
			c.Text = s.tok.Decode(row.res.ids)
		}
		if row.res.stopped {
			c.FinishReason = "stop"
		}
		resp.Usage.CompletionTokens += n
		resp.Choices = append(resp.Choices, c)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	writeJSON(w, http.StatusOK, resp)
	return name, http.StatusOK
}

type classifyRequest struct {
	taskRequest
	Input json.RawMessage `json:"input"`
}

// LabelScore is a label word and its log-likelihood.
type LabelScore struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

type classification struct {
	Index  int          `json:"index"`
	Label  string       `json:"label"`
	Scores []LabelScore `json:"scores"`
}

type classifyResponse struct {
	ID      string           `json:"id"`
	Object  string           `json:"object"`
	Created int64            `json:"created"`
	Model   string           `json:"model"`
	Data    []classification `json:"data"`
	Usage   usage            `json:"usage"`
}

func (s *Server) classify(w http.ResponseWriter, r *http.Request) (string, int) {
	var req classifyRequest
	t, e := s.taskOf(w, r, &req)
	if e != nil {
		return "", writeError(w, e)
	}
	name := t.Card.Task
	if len(t.labelIDs) == 0 {
		return name, writeError(w, badRequest("model", "task %s has no label words to rank (question answering): use /v1/completions", name))
	}
	rows, tokens, e := s.answer(r, t, req.Input, "input", req.Raw, classify, 0)
	if e != nil {
		return name, writeError(w, e)
	}
	resp := classifyResponse{ID: fmt.Sprintf("cls-%d", requestID.Add(1)), Object: "classification", Created: time.Now().Unix(), Model: name}
	resp.Usage.PromptTokens, resp.Usage.TotalTokens = tokens, tokens
	for i, row := range rows {
		c := classification{Index: i, Label: t.Card.Labels[row.res.label]}
		for k, sc := range row.res.scores {
			c.Scores = append(c.Scores, LabelScore{Label: t.Card.Labels[k], Score: sc})
		}
		resp.Data = append(resp.Data, c)
	}
	writeJSON(w, http.StatusOK, resp)
	return name, http.StatusOK
}

// modelInfo is a task in /v1/models: the OpenAI model object with what a
// client needs to know about the task.
type modelInfo struct {
	ID        string   `json:"id"`
	Object    string   `json:"object"`
	Created   int64    `json:"created"`
	OwnedBy   string   `json:"owned_by"`
	Labels    []string `json:"labels"`
	Metric    string   `json:"metric"`
	Decode    string   `json:"decode"`
	Template  string   `json:"template,omitempty"`
	Fields    []string `json:"fields,omitempty"`
	TargetLen int      `json:"target_len"`
	PromptLen int      `json:"prompt_len"`
	Method    string   `json:"method"`
	Source    string   `json:"source"`
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) (string, int) {
	if r.Method != http.MethodGet {
		return "", writeError(w, &apiError{status: http.StatusMethodNotAllowed, message: "/v1/models takes GET", typ: "invalid_request_error", header: map[string]string{"Allow": "GET"}})
	}
	data := []modelInfo{}
	for _, n := range taskNames(s.tasks) {
		t := s.tasks[n]
		c := t.Card
		labels := c.Labels
		if labels == nil {
			labels = []string{}
		}
		data = append(data, modelInfo{ID: n, Object: "model", Created: s.started.Unix(), OwnedBy: "shlpt-vk", Labels: labels,
			Metric: c.Metric, Decode: c.Decode, Template: c.Template, Fields: c.Fields, TargetLen: c.TargetLen, PromptLen: c.PromptLen,
			Method: c.Method, Source: t.Source})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	return "", http.StatusOK
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "tasks": len(s.tasks)})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	ms := s.opt.Engine.Device().MemoryStats()
	g := gauges{queueDepth: s.q.depth(), queueLimit: s.opt.QueueLimit, allocated: ms.Allocated, reserved: ms.Reserved, peak: ms.Peak}
	if s.programs != nil {
		g.programs, g.programRuns, g.programRecord = s.programs.stats()
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.met.write(w, g)
}
