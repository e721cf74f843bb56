package simulate

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/tmpl"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
)

// call is a compiled Call.
type call struct {
	to, name    string // the dependency, the endpoint as declared
	kind        config.EndpointKind
	method      string // HTTP method
	path        string // pattern; {names} are filled per call
	count       int
	probability *float64
	parallel    bool
	optional    bool
	body        any
	grpc        method
	client      *connect.Client[raw, raw]
}

func (s *sim) compileCalls(key string, list []*config.Call, sc tmpl.Scope) ([]call, error) {
	out := make([]call, 0, len(list))
	for i, d := range list {
		k := fmt.Sprintf("%s.%d", key, i)
		kind, method, path, _ := config.ParseEndpoint(d.Endpoint) // validated with the configuration
		c := call{to: d.To, name: d.Endpoint, kind: kind, method: method, path: path, count: max(d.Count, 1),
			probability: d.Probability, parallel: d.Parallel, optional: d.Optional, body: d.Body}
		if err := tmpl.Check(d.Body, sc); err != nil {
			return nil, s.p.Config.Errorf(k+".body", "%v", err)
		}
		if kind == config.GRPC {
			c.grpc = lookupMethod(d.Endpoint)
			if d.Body != nil && !c.grpc.known() {
				return nil, s.p.Config.Errorf(k+".body", "this binary links no generated code for %s, so it cannot build its request; drop the body to send an empty message", d.Endpoint)
			}
			dep := s.clients[d.To]
			c.client = connect.NewClient[raw, raw](dep.HTTPClient(), dep.BaseURL()+path, connect.WithGRPC(), connect.WithCodec(rawCodec{}))
		}
		out = append(out, c)
	}
	return out, nil
}

// makeCalls makes an exchange's calls in order; a required one failing (after its
// policy's retries) fails the exchange.
func (s *sim) makeCalls(ctx context.Context, calls []call, x *exchange) error {
	for i := range calls {
		c := &calls[i]
		if !chance(x.rnd, c.probability) {
			continue
		}
		var err error
		if c.parallel && c.count > 1 {
			g, gctx := errgroup.WithContext(ctx)
			for n := range c.count {
				g.Go(func() error { return s.callOnce(gctx, c, x, n) })
			}
			err = g.Wait()
		} else {
			for n := range c.count {
				if err = s.callOnce(ctx, c, x, n); err != nil {
					break
				}
			}
		}
		if err != nil && !c.optional {
			return &failure{status: http.StatusServiceUnavailable, detail: fmt.Sprintf("%s %s failed: %s", c.to, c.name, problem.From(err).Detail)}
		}
	}
	return nil
}

// callOnce makes the n-th call of c for x.
func (s *sim) callOnce(ctx context.Context, c *call, x *exchange, n int) error {
	err := s.send(ctx, c, x, n)
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	s.metrics.calls.WithLabelValues(c.to, c.name, outcome).Inc()
	return err
}

func (s *sim) send(ctx context.Context, c *call, x *exchange, n int) error {
	body := tmpl.Render(c.body, x.vars)
	if c.kind == config.GRPC {
		var msg []byte
		if c.grpc.known() {
			b, err := c.grpc.encode(body, true)
			if err != nil {
				return err
			}
			msg = b
		}
		req := connect.NewRequest(&raw{b: msg})
		req.Header().Set("Idempotency-Key", fmt.Sprintf("%s-%s-%d", x.vars.ID, c.name, n))
		_, err := c.client.CallUnary(ctx, req)
		return rpc.FromConnect(err)
	}
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = bytes.NewReader(b)
	}
	dep := s.clients[c.to]
	req, err := http.NewRequestWithContext(ctx, c.method, dep.BaseURL()+tmpl.FillPath(c.path, x.vars), payload)
	if err != nil {
		return err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Every simulated call may be repeated: the policy retries POSTs too.
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d-%s", x.vars.ID, n, strings.ReplaceAll(c.name, " ", "")))
	resp, err := dep.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return problem.FromResponse(resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

// handler is a compiled Handler.
type handler struct {
	event     string
	latency   latency
	errorRate float64
	calls     []call
	publishes []emit
}

func (s *sim) compileHandler(key string, d *config.Handler) (*handler, error) {
	sc := tmpl.Scope{Event: true}
	h := &handler{event: d.Event, latency: newLatency(d.Latency), errorRate: d.ErrorRate}
	var err error
	if h.calls, err = s.compileCalls(key+".calls", d.Calls, sc); err != nil {
		return nil, err
	}
	if h.publishes, err = compileEmits(d.Publishes, key+".publishes", sc, s.p.Config); err != nil {
		return nil, err
	}
	return h, nil
}

// delivered is what deliver hands the inbox's transaction.
type delivered struct{ row row }

type deliveredKey struct{}

// deliver handles one delivery: its processing time and calls outside any
// transaction, then its row and events through the inbox (once per event).
func (s *sim) deliver(ctx context.Context, h *handler, m *bus.Message, write bus.Handler) error {
	begun := time.Now()
	x := &exchange{rnd: s.rand(), vars: &tmpl.Vars{ID: m.Event.ID}, begun: begun}
	_ = m.Event.DecodeData(&x.vars.Event)
	ctx = event.WithCause(ctx, &m.Event)
	fail := func(err error) error {
		s.metrics.events.WithLabelValues(m.Event.Type, "failed").Inc()
		return err
	}
	if err := pause(ctx, h.latency.draw(x.rnd)); err != nil {
		return err
	}
	if x.rnd.Float64() < h.errorRate {
		return fail(fmt.Errorf("simulated failure handling %s (error_rate %g)", m.Event.Type, h.errorRate))
	}
	if err := s.makeCalls(ctx, h.calls, x); err != nil {
		return fail(err)
	}
	events, err := s.eventsOf(ctx, x.rnd, x.vars, h.publishes)
	if err != nil {
		return fail(bus.Permanent(err))
	}
	r := row{id: m.Event.ID, kind: "event", name: m.Event.Type, took: time.Since(begun), events: events}
	if err := write(context.WithValue(ctx, deliveredKey{}, &delivered{row: r}), m); err != nil {
		return fail(err)
	}
	s.metrics.events.WithLabelValues(m.Event.Type, "handled").Inc()
	return nil
}

// record is the inbox's handler: the delivery's row and events, in the inbox's
// transaction.
func (s *sim) record(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
	d, ok := ctx.Value(deliveredKey{}).(*delivered)
	if !ok {
		return errors.New("simulate: a delivery reached the inbox without being handled")
	}
	return s.insert(ctx, tx, d.row)
}
