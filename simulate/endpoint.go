package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/tmpl"
	"github.com/switchyard/switchyard/rpc"
)

// maxRequestBody bounds what a simulated endpoint reads of a request.
const maxRequestBody = 1 << 20

// endpoint is a compiled Endpoint.
type endpoint struct {
	name       string // as declared: the metrics' label
	kind       config.EndpointKind
	pattern    string // for the mux: "GET /v1/rides/{id}"
	params     []string
	latency    latency
	errorRate  float64
	errorSt    int
	size       int
	response   any
	encoded    *tmpl.JSON         // response (or the filler), compiled: what REST answers
	answered   prometheus.Counter // simulate_requests_total of its 200s, resolved once
	outcomes   []outcome
	total      float64 // of the outcomes' weights
	calls      []call
	publishes  []emit
	grpc       method
	interval   time.Duration
	messages   int
	messageLen int
}

type outcome struct {
	weight    float64
	status    int
	response  any
	encoded   *tmpl.JSON
	publishes []emit
}

func (s *sim) compileEndpoint(key string, d *config.Endpoint) (*endpoint, error) {
	cfg := s.p.Config
	kind, method, path, _ := config.ParseEndpoint(d.Endpoint) // validated with the configuration
	ep := &endpoint{name: d.Endpoint, kind: kind, pattern: method + " " + path, params: tmpl.Params(path),
		latency: newLatency(d.Latency), errorRate: d.ErrorRate, errorSt: d.ErrorStatus, size: d.ResponseBytes,
		response: d.Response, interval: d.Interval.Std(), messages: d.Messages, messageLen: d.MessageBytes}
	if ep.errorSt == 0 {
		ep.errorSt = http.StatusServiceUnavailable
	}
	ep.answered = s.metrics.requests.WithLabelValues(ep.name, strconv.Itoa(http.StatusOK))
	if ep.size == 0 {
		ep.size = 256
	}
	if ep.messageLen == 0 {
		ep.messageLen = 128
	}
	sc := tmpl.Scope{Request: kind != config.Stream, Path: ep.params}
	if kind == config.GRPC {
		ep.grpc = lookupMethod(d.Endpoint)
		ep.pattern = path // a gRPC method is POSTed; connect answers anything else
	}
	check := func(k string, t any) error {
		if err := tmpl.Check(t, sc); err != nil {
			return cfg.Errorf(k, "%v", err)
		}
		if t != nil && kind == config.GRPC {
			if !ep.grpc.known() {
				return cfg.Errorf(k, "this binary links no generated code for %s, so it cannot build its messages; drop the response to answer response_bytes of filler", d.Endpoint)
			}
			if _, err := ep.grpc.encode(tmpl.Render(t, &tmpl.Vars{Path: map[string]string{}}), false); err != nil {
				return cfg.Errorf(k, "not a %s: %v", ep.grpc.desc.Output().FullName(), err)
			}
		}
		return nil
	}
	if err := check(key+".response", d.Response); err != nil {
		return nil, err
	}
	var err error
	answer := d.Response
	if answer == nil { // filler of the declared size: an id, and padding
		answer = map[string]any{"id": "{{id}}", "filler": strings.Repeat("x", max(ep.size-len(`{"id":"","filler":""}`)-36, 0))}
	}
	if ep.encoded, err = tmpl.CompileJSON(answer); err != nil {
		return nil, cfg.Errorf(key+".response", "not JSON: %v", err)
	}
	for i, o := range d.Outcomes {
		k := fmt.Sprintf("%s.outcomes.%d", key, i)
		if err := check(k+".response", o.Response); err != nil {
			return nil, err
		}
		oc := outcome{weight: o.Weight, status: o.Status, response: o.Response}
		if oc.status == 0 {
			oc.status = http.StatusOK
		}
		if o.Response != nil {
			if oc.encoded, err = tmpl.CompileJSON(o.Response); err != nil {
				return nil, cfg.Errorf(k+".response", "not JSON: %v", err)
			}
		}
		if oc.publishes, err = compileEmits(o.Publishes, k+".publishes", sc, cfg); err != nil {
			return nil, err
		}
		ep.outcomes = append(ep.outcomes, oc)
		ep.total += o.Weight
	}
	if ep.calls, err = s.compileCalls(key+".calls", d.Calls, sc); err != nil {
		return nil, err
	}
	if ep.publishes, err = compileEmits(d.Publishes, key+".publishes", sc, cfg); err != nil {
		return nil, err
	}
	return ep, nil
}

// exchange is one request being simulated.
type exchange struct {
	rnd   *rand.Rand
	vars  *tmpl.Vars
	begun time.Time
}

func (s *sim) newExchange(r *http.Request, ep *endpoint) *exchange {
	v := &tmpl.Vars{ID: event.NewID(), Path: map[string]string{}}
	for _, p := range ep.params {
		v.Path[p] = r.PathValue(p)
	}
	return &exchange{rnd: s.rand(), vars: v, begun: time.Now()}
}

// answer is what a request comes to: its status, and the template of its body
// (nil for filler), rendered by the protocol that answers.
type answer struct {
	status  int
	body    any
	encoded *tmpl.JSON
}

// serve simulates one request: its own processing time, then its error or its
// calls, then its row and events, committed together.
func (s *sim) serve(ctx context.Context, ep *endpoint, x *exchange) (answer, error) {
	own := ep.latency.draw(x.rnd)
	if x.rnd.Float64() < ep.errorRate {
		if err := pause(ctx, own); err != nil {
			return answer{}, err
		}
		s.note(ctx, row{id: x.vars.ID, kind: "request", name: ep.name, status: ep.errorSt, took: time.Since(x.begun)})
		return answer{}, &failure{status: ep.errorSt, detail: fmt.Sprintf("simulated failure (error_rate %g)", ep.errorRate)}
	}
	if err := s.makeCalls(ctx, ep.calls, x); err != nil {
		s.note(ctx, row{id: x.vars.ID, kind: "request", name: ep.name, status: http.StatusServiceUnavailable, took: time.Since(x.begun)})
		return answer{}, err
	}
	a := answer{status: http.StatusOK, body: ep.response, encoded: ep.encoded}
	var extra []emit
	if len(ep.outcomes) > 0 {
		o := ep.pick(x.rnd)
		a.status, extra = o.status, o.publishes
		if o.response != nil {
			a.body, a.encoded = o.response, o.encoded
		}
	}
	if err := pause(ctx, own); err != nil {
		return answer{}, err
	}
	events, err := s.eventsOf(ctx, x.rnd, x.vars, ep.publishes, extra)
	if err != nil {
		return answer{}, err
	}
	r := row{id: x.vars.ID, kind: "request", name: ep.name, status: a.status, took: time.Since(x.begun), events: events}
	if len(events) == 0 {
		s.note(ctx, r)
		return a, nil
	}
	if err := s.write(ctx, r); err != nil {
		return answer{}, err
	}
	return a, nil
}

// note records the row of an exchange that publishes nothing, whose answer does
// not wait for it (a read, a failure, a stream): the journal writes it with the
// next batch.
func (s *sim) note(ctx context.Context, r row) { s.journal.add(ctx, r) }

func (ep *endpoint) pick(rnd *rand.Rand) outcome {
	n := rnd.Float64() * ep.total
	for _, o := range ep.outcomes {
		if n < o.weight {
			return o
		}
		n -= o.weight
	}
	return ep.outcomes[len(ep.outcomes)-1]
}

func (s *sim) endpointHandler(ep *endpoint) http.Handler {
	switch ep.kind {
	case config.GRPC:
		_, h := s.grpcHandler(ep)
		return h
	case config.Stream:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.stream(w, r, ep) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := s.newExchange(r, ep)
		if r.Body != nil && r.ContentLength != 0 {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
			if err != nil {
				s.fail(w, r, &failure{status: http.StatusRequestEntityTooLarge, detail: "the request body is over 1 MiB"})
				return
			}
			_ = json.Unmarshal(body, &x.vars.Request) // a body that is no JSON is simply not readable by templates
		}
		a, err := s.serve(r.Context(), ep, x)
		s.count(ep, statusOf(a, err))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		buf := bodies.Get().(*[]byte)
		body := a.encoded.Append((*buf)[:0], x.vars)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(a.status)
		_, _ = w.Write(body)
		if cap(body) <= 64<<10 {
			*buf = body
			bodies.Put(buf)
		}
	})
}

// bodies lends the REST answers their buffers.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// count counts one answer of ep.
func (s *sim) count(ep *endpoint, status int) {
	if status == http.StatusOK {
		ep.answered.Inc()
		return
	}
	s.metrics.requests.WithLabelValues(ep.name, strconv.Itoa(status)).Inc()
}

func statusOf(a answer, err error) int {
	var f *failure
	if errors.As(err, &f) {
		return f.status
	}
	if err != nil {
		return http.StatusInternalServerError
	}
	return a.status
}

// grpcHandler serves a unary gRPC method (gRPC, gRPC-Web and Connect, as any
// connect handler does) with messages as bytes.
func (s *sim) grpcHandler(ep *endpoint) (string, http.Handler) {
	return ep.pattern, connect.NewUnaryHandler(ep.pattern, func(ctx context.Context, req *connect.Request[raw]) (*connect.Response[raw], error) {
		x := &exchange{rnd: s.rand(), vars: &tmpl.Vars{ID: event.NewID(), Path: map[string]string{}}, begun: time.Now()}
		if ep.grpc.known() {
			x.vars.Request = ep.grpc.decode(req.Msg.b, true)
		}
		a, err := s.serve(ctx, ep, x)
		s.count(ep, statusOf(a, err))
		if err == nil && a.status >= 400 {
			err = &failure{status: a.status, detail: "simulated outcome"}
		}
		if err != nil {
			var f *failure
			if errors.As(err, &f) {
				return nil, rpc.ConnectError(f.asProblem())
			}
			return nil, rpc.ConnectError(err)
		}
		out := &raw{}
		switch {
		case a.body != nil:
			b, err := ep.grpc.encode(tmpl.Render(a.body, x.vars), false)
			if err != nil {
				return nil, rpc.ConnectError(err)
			}
			out.b = b
		case ep.grpc.known():
			// A real message with every field at its zero value: callers can read it.
		default:
			out.b = filler(ep.size)
		}
		return connect.NewResponse(out), nil
	}, append(rpc.HandlerOptions(), connect.WithCodec(rawCodec{}))...)
}

// stream serves a WebSocket stream: a message every interval until the declared
// number is sent or the client leaves.
func (s *sim) stream(w http.ResponseWriter, r *http.Request, ep *endpoint) {
	x := s.newExchange(r, ep)
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.metrics.requests.WithLabelValues(ep.name, strconv.Itoa(http.StatusBadRequest)).Inc()
		return // Accept has answered
	}
	defer func() { _ = conn.CloseNow() }()
	ctx := conn.CloseRead(r.Context()) // the client only listens; its close ends ctx
	s.metrics.requests.WithLabelValues(ep.name, strconv.Itoa(http.StatusSwitchingProtocols)).Inc()
	pad := strings.Repeat("x", max(ep.messageLen-64, 0))
	sent := 0
	for ep.messages == 0 || sent < ep.messages {
		if err := pause(ctx, ep.interval); err != nil {
			break
		}
		msg, _ := json.Marshal(map[string]any{"stream": x.vars.ID, "seq": sent + 1, "at": time.Now().UTC().Format(time.RFC3339Nano), "filler": pad})
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.Write(wctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			break
		}
		sent++
	}
	s.note(r.Context(), row{id: x.vars.ID, kind: "stream", name: ep.name, status: http.StatusSwitchingProtocols, took: time.Since(x.begun)})
	if ep.messages > 0 && sent == ep.messages {
		_ = conn.Close(websocket.StatusNormalClosure, "stream complete")
	}
}
