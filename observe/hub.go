package observe

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
)

// HubConfig configures a Hub. Zero fields take the default in brackets.
type HubConfig struct {
	Traces TraceLimits
	// LogLines is how many log lines are kept, all services together [20000].
	LogLines int
	// MaxExportBytes bounds one OTLP request body, after decompression [16 MiB].
	MaxExportBytes int64
	// Logger receives the hub's own problems.
	Logger *slog.Logger
}

// Hub receives spans over OTLP/HTTP and log lines from the supervisor, and serves
// them:
//
//	POST /v1/traces            OTLP/HTTP export (protobuf or JSON, optionally gzip)
//	GET  /api/traces           recent traces, newest first (?service= &since=5m &limit= &value=<an attribute value>)
//	GET  /api/traces/{id}      one trace's spans
//	GET  /api/spans            every span of the traces of a window (?since=5m &service=)
//	GET  /api/logs             log lines (?service= &level= &trace= &after= &limit= &wait=30s)
//
// More routes (diagrams) can be added with Handle.
type Hub struct {
	Traces *Traces
	Logs   *Logs

	cfg HubConfig
	mux *http.ServeMux
	pw  problem.Writer
}

// NewHub returns an empty hub.
func NewHub(cfg HubConfig) *Hub {
	if cfg.MaxExportBytes <= 0 {
		cfg.MaxExportBytes = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{Traces: NewTraces(cfg.Traces), Logs: NewLogs(cfg.LogLines), cfg: cfg, mux: http.NewServeMux(),
		pw: problem.Writer{Log: cfg.Logger}}
	h.mux.HandleFunc("POST /v1/traces", h.export)
	h.mux.HandleFunc("GET /api/traces", h.listTraces)
	h.mux.HandleFunc("GET /api/traces/{id}", h.getTrace)
	h.mux.HandleFunc("GET /api/spans", h.spans)
	h.mux.HandleFunc("GET /api/logs", h.logs)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.pw.Write(w, r, problem.New(problem.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return h
}

// Handle adds a route to the hub's API.
func (h *Hub) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// Problems is the hub's problem writer, for routes added with Handle.
func (h *Hub) Problems() problem.Writer { return h.pw }

func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Hub) export(w http.ResponseWriter, r *http.Request) {
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var body io.Reader = http.MaxBytesReader(w, r.Body, h.cfg.MaxExportBytes)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			h.pw.Write(w, r, problem.New(problem.Invalid, "the body is not gzip: %v", err))
			return
		}
		defer func() { _ = zr.Close() }()
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, h.cfg.MaxExportBytes+1))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.pw.Write(w, r, problem.New(problem.TooLarge, "an export is at most %d bytes", h.cfg.MaxExportBytes))
			return
		}
		h.pw.Write(w, r, problem.New(problem.Invalid, "reading the export: %v", err))
		return
	}
	if int64(len(data)) > h.cfg.MaxExportBytes {
		h.pw.Write(w, r, problem.New(problem.TooLarge, "an export is at most %d bytes once decompressed", h.cfg.MaxExportBytes))
		return
	}
	var spans []Span
	switch ctype {
	case "application/x-protobuf", "application/protobuf":
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			h.pw.Write(w, r, problem.New(problem.Invalid, "the body is not an OTLP ExportTraceServiceRequest: %v", err))
			return
		}
		spans = FromOTLP(&req)
	case "application/json":
		spans, err = DecodeOTLPJSON(data)
		if err != nil {
			h.pw.Write(w, r, problem.New(problem.Invalid, "%v", err))
			return
		}
	default:
		h.pw.Write(w, r, problem.New(problem.Unsupported, "send application/x-protobuf or application/json, not %q", ctype))
		return
	}
	h.Traces.Add(spans...)
	w.Header().Set("Content-Type", ctype)
	if ctype == "application/json" {
		_, _ = w.Write([]byte("{}"))
		return
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// query reads the common parameters: service, since (a duration back from now),
// limit.
func query(r *http.Request) (TraceQuery, error) {
	q := TraceQuery{Service: r.URL.Query().Get("service"), Value: r.URL.Query().Get("value")}
	if s := r.URL.Query().Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return q, problem.InvalidField("since", "want a positive duration such as 5m, got %q", s)
		}
		q.Since = time.Now().Add(-d)
	}
	var err error
	q.Limit, err = limit(r.URL.Query().Get("limit"), 1000)
	return q, err
}

// limit reads an optional limit of 1 to most; 0 when absent (the default applies).
func limit(s string, most int) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, problem.InvalidField("limit", "want 1 to %d, got %q", most, s)
	}
	return n, nil
}

func (h *Hub) listTraces(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		h.pw.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, map[string]any{"traces": h.Traces.List(q)})
}

func (h *Hub) getTrace(w http.ResponseWriter, r *http.Request) {
	t, err := h.Trace(r.PathValue("id"))
	if err != nil {
		h.pw.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, t)
}

// Trace returns the stored trace with id, or a problem: Invalid for a malformed id,
// NotFound for an unknown (or forgotten) one.
func (h *Hub) Trace(id string) (Trace, error) {
	if !ValidTraceID(id) {
		return Trace{}, problem.InvalidField("id", "a trace id is 32 hex digits")
	}
	t, ok := h.Traces.Get(strings.ToLower(id))
	if !ok {
		return Trace{}, problem.New(problem.NotFound, "no trace %s here (it may have been forgotten: the hub keeps the most recent)", id)
	}
	return t, nil
}

func (h *Hub) spans(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		h.pw.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, map[string]any{"spans": h.Traces.Spans(q)})
}

func (h *Hub) logs(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := LogQuery{Service: v.Get("service"), Level: v.Get("level"), TraceID: v.Get("trace")}
	if q.Level != "" && !validLevel(q.Level) {
		h.pw.Write(w, r, problem.InvalidField("level", "want debug, info, warn or error, got %q", q.Level))
		return
	}
	if q.TraceID != "" && !ValidTraceID(q.TraceID) {
		h.pw.Write(w, r, problem.InvalidField("trace", "a trace id is 32 hex digits"))
		return
	}
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			h.pw.Write(w, r, problem.InvalidField("after", "want a line number, got %q", s))
			return
		}
		q.After = n
	}
	n, err := limit(v.Get("limit"), 10000)
	if err != nil {
		h.pw.Write(w, r, err)
		return
	}
	q.Limit = n
	var wait time.Duration
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > time.Minute {
			h.pw.Write(w, r, problem.InvalidField("wait", "want a duration up to 1m, got %q", s))
			return
		}
		wait = d
	}
	lines, cursor := h.Logs.Query(q)
	// A follower waits for news; lines that arrive but do not match keep it waiting.
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		for len(lines) == 0 && ctx.Err() == nil {
			h.Logs.Wait(ctx, cursor)
			q.After = cursor
			lines, cursor = h.Logs.Query(q)
		}
	}
	if lines == nil {
		lines = []Line{}
	}
	rest.Write(w, http.StatusOK, map[string]any{"lines": lines, "cursor": cursor})
}

func validLevel(l string) bool {
	switch l {
	case "debug", "info", "warn", "error", "DEBUG", "INFO", "WARN", "ERROR":
		return true
	}
	return false
}

// Log records one line a service wrote. A JSON record (what services write when
// not at a terminal) gives the time, level, message and trace id; any other line is
// kept as an info message.
func (h *Hub) Log(service string, raw []byte) {
	line := Line{Service: service, Raw: string(raw)}
	var rec struct {
		Time    time.Time `json:"time"`
		Level   string    `json:"level"`
		Msg     string    `json:"msg"`
		TraceID string    `json:"trace_id"`
	}
	if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &rec) == nil {
		line.Time, line.Level, line.Message, line.TraceID = rec.Time, rec.Level, rec.Msg, rec.TraceID
	} else {
		line.Level, line.Message = "INFO", string(raw)
	}
	if line.Time.IsZero() {
		line.Time = time.Now()
	}
	h.Logs.Add(line)
}
