// Package rpc is the one way Switchyard services call each other, and the server side
// that answers.
//
// A [Client] is an http.RoundTripper for one dependency, composed as
//
//	tracing → policies (resilience) → per attempt: balancer pick → service token,
//	deadline and trace headers → the wire
//
// Instances come from a discovery.Resolver that the client watches; the balancer
// picks one per attempt (a retry may land elsewhere) and learns from each outcome.
// The same client serves REST (HTTP/1.1; use HTTPClient) and gRPC (HTTP/2 without
// TLS; hand HTTPClient to a connect-go client with connect.WithGRPC()). Under
// mutual TLS (ClientConfig.TLS) both go over TLS instead — HTTP/1.1 and HTTP/2 —
// and the certificate stands in for the service token.
//
// Deadlines propagate: gRPC carries grpc-timeout (connect-go sets it from the
// context); REST carries the remaining milliseconds in X-Request-Timeout-Ms, which
// the [Deadline] middleware turns back into a context deadline on the callee — so a
// callee never works past its caller's deadline.
//
// On the server, [MountGRPC] puts connect handlers, gRPC server reflection and the
// standard gRPC health service on a service's own mux, so grpcurl and grpc-go
// clients can call it.
package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/balancer"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/telemetry"
)

// TimeoutHeader carries a REST call's remaining time in milliseconds.
const TimeoutHeader = "X-Request-Timeout-Ms"

// Protocol is how a dependency is called.
type Protocol string

// The protocols.
const (
	REST Protocol = "rest"
	GRPC Protocol = "grpc"
)

// ClientConfig configures a client to one dependency.
type ClientConfig struct {
	// Service is the dependency's name. Required.
	Service string
	// Protocol selects HTTP/1.1 (REST) or HTTP/2 cleartext (gRPC) [REST].
	Protocol Protocol
	// Resolver finds the dependency's instances. Required.
	Resolver discovery.Resolver
	// Balancer configures instance selection.
	Balancer balancer.Config
	// Policy is the dependency's resilience policy (Dependency is set to Service).
	Policy resilience.Config
	// Tokens, when set, sends a service token with every call.
	Tokens *authn.ServiceTokens
	// TLS, when set, calls the dependency over TLS with this configuration (mutual
	// TLS: see authn.Certificates.ClientTLS), https on the wire [plain HTTP].
	TLS *tls.Config
	// Tracer starts the client span [no tracing].
	Tracer trace.Tracer
	// Propagator injects trace context [W3C trace context + baggage].
	Propagator propagation.TextMapPropagator
	// Logger receives resolution failures [discard].
	Logger *slog.Logger
	// Transport sends each attempt [a tuned transport for the protocol].
	Transport http.RoundTripper
}

// Client calls one dependency.
type Client struct {
	cfg       ClientConfig
	bal       *balancer.Balancer
	policy    *resilience.Policy
	base      http.RoundTripper
	http      *http.Client
	spanStart []trace.SpanStartOption
	scheme    string // of every attempt: http, or https over TLS
	// noSpans: the tracer is a no-op, so a call that carries no recording span has
	// no span to start (the no-op tracer would only wrap what ctx holds).
	noSpans bool
	// wallClock: the balancer runs on time.Now, so the attempt's own clock reads
	// serve it too.
	wallClock bool
	// remaining caches the last X-Request-Timeout-Ms value: calls under the same
	// timeout send the same few values, and a header value is never modified.
	remaining atomic.Pointer[remainingValue]
}

// remainingValue is a TimeoutHeader value shared by the attempts that send it.
type remainingValue struct {
	ms    int64
	value []string
}

// NewClient builds the client and resolves the dependency once, so that it can be
// used at once; Run keeps the instance list current.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Service == "" || cfg.Resolver == nil {
		return nil, errors.New("rpc: a client needs a Service and a Resolver")
	}
	if cfg.Protocol == "" {
		cfg.Protocol = REST
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	_, noSpans := cfg.Tracer.(noop.Tracer)
	wallClock := cfg.Balancer.Now == nil
	if cfg.Propagator == nil {
		cfg.Propagator = telemetry.Propagator()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil && cfg.TLS != nil {
		cfg.Transport = NewTLSTransport(cfg.Protocol, cfg.TLS)
	} else if cfg.Transport == nil {
		cfg.Transport = NewTransport(cfg.Protocol)
	}
	cfg.Policy.Dependency = cfg.Service
	policy, err := resilience.New(cfg.Policy)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, bal: balancer.New(cfg.Balancer), policy: policy, base: cfg.Transport,
		spanStart: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(semconv.ServicePeerName(cfg.Service), semconv.ServerAddress(cfg.Service))}}
	if cfg.Protocol == GRPC {
		c.spanStart = append(c.spanStart, trace.WithAttributes(semconv.RPCSystemNameGRPC))
	}
	c.scheme, c.noSpans, c.wallClock = "http", noSpans, wallClock
	if cfg.TLS != nil {
		c.scheme = "https"
	}
	c.http = &http.Client{Transport: c, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if list, err := cfg.Resolver.Resolve(ctx, cfg.Service); err == nil {
		c.bal.Update(list)
	} else {
		cfg.Logger.Warn("rpc: first resolution failed; will keep watching", "dependency", cfg.Service, "error", err)
	}
	return c, nil
}

// NewTransport returns a transport tuned for calls between services: many idle
// connections per instance, and HTTP/2 without TLS for gRPC.
func NewTransport(p Protocol) *http.Transport {
	t := &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	if p == GRPC {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		t.Protocols = &protocols
	}
	return t
}

// NewTLSTransport returns NewTransport's tuning over TLS with cfg: HTTP/1.1 for
// REST, HTTP/2 for gRPC.
func NewTLSTransport(p Protocol, cfg *tls.Config) *http.Transport {
	t := NewTransport(p)
	t.TLSClientConfig = cfg.Clone()
	t.TLSHandshakeTimeout = 5 * time.Second
	var protocols http.Protocols
	if p == GRPC {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	t.Protocols = &protocols
	return t
}

// Run keeps the instance list current until ctx ends. A watch that breaks is
// started again after a second; meanwhile the last known instances stay in use.
func (c *Client) Run(ctx context.Context) error {
	for {
		updates, err := c.cfg.Resolver.Watch(ctx, c.cfg.Service)
		if err != nil {
			c.cfg.Logger.Warn("rpc: watch failed; retrying", "dependency", c.cfg.Service, "error", err)
		} else {
			for list := range updates {
				c.bal.Update(list)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// HTTPClient is an http.Client whose every request goes through this client's stack.
// Address requests to BaseURL.
func (c *Client) HTTPClient() *http.Client { return c.http }

// BaseURL is the URL to address the dependency by: http://<service>.
func (c *Client) BaseURL() string { return "http://" + c.cfg.Service }

// Balancer exposes the client's balancer (for metrics and tests).
func (c *Client) Balancer() *balancer.Balancer { return c.bal }

// Policy exposes the client's resilience policy.
func (c *Client) Policy() *resilience.Policy { return c.policy }

type stickyKey struct{}

// WithStickyKey makes the calls made with ctx prefer one instance per key (under the
// weighted policy): the gateway's canary routing keeps a user on one version.
func WithStickyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, stickyKey{}, key)
}

// RoundTrip implements http.RoundTripper.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := c.startSpan(req)
	ended := false // a gRPC call's span ends with its body, which its status follows
	defer func() {
		if !ended {
			span.End()
		}
	}()
	recording := span.IsRecording()
	if recording {
		if c.cfg.Protocol == GRPC {
			span.SetAttributes(semconv.RPCMethod(strings.TrimPrefix(req.URL.Path, "/")))
		} else {
			span.SetAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLScheme(c.scheme), semconv.URLFull(c.fullURL(req.URL)))
		}
		if req.Header.Get("Upgrade") == "" {
			now := time.Now()
			span.SetAttributes(attribute.Int64(observe.DeadlineAttribute, c.policy.Deadline(ctx, now).Sub(now).Milliseconds()))
		}
	}
	var resp *http.Response
	var err error
	if req.Header.Get("Upgrade") != "" {
		// A protocol upgrade (WebSocket) opens a stream, not a call: no deadline,
		// retry or breaker applies to it, only instance selection.
		start := time.Now()
		resp, err = c.attempt(req.WithContext(ctx))
		c.policy.Count(resp, err, time.Since(start))
	} else {
		resp, err = c.policy.Do(ctx, req, c.attempt)
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, problem.From(err).Detail)
		span.SetAttributes(semconv.ErrorTypeKey.String(problem.KindOf(err).String()))
		return nil, err
	}
	if !recording {
		return resp, nil
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if c.cfg.Protocol == GRPC {
		if code := resp.Header.Get("Grpc-Status"); code != "" { // trailers only
			grpcStatus(span, code)
			return resp, nil
		}
		if resp.StatusCode == http.StatusOK && resp.Body != nil && resp.Body != http.NoBody {
			ended = true
			resp.Body = &grpcBody{ReadCloser: resp.Body, resp: resp, span: span}
			return resp, nil
		}
	}
	if resp.StatusCode >= 400 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
	}
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}

// grpcStatus records a gRPC call's status (a grpc-status value) on its span; any
// but OK is its error.type.
func grpcStatus(span trace.Span, code string) {
	name := telemetry.GRPCCodeName(code)
	span.SetAttributes(semconv.RPCResponseStatusCode(name))
	if name != "OK" {
		span.SetAttributes(semconv.ErrorTypeKey.String(name))
		span.SetStatus(codes.Error, name)
	}
}

// grpcBody ends a gRPC call's span when its body has been read to the end or
// closed, with the status the trailers then hold.
type grpcBody struct {
	io.ReadCloser
	resp *http.Response
	span trace.Span
	once sync.Once
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *grpcBody) Close() error {
	err := b.ReadCloser.Close()
	b.end()
	return err
}

func (b *grpcBody) end() {
	b.once.Do(func() {
		if code := b.resp.Trailer.Get("Grpc-Status"); code != "" {
			grpcStatus(b.span, code)
		}
		b.span.End()
	})
}

// fullURL is url.full of a call: the service's logical address and the path, with
// the query's values redacted (they may hold secrets) and no fragment.
func (c *Client) fullURL(u *url.URL) string {
	full := url.URL{Scheme: c.scheme, Host: c.cfg.Service, Path: u.Path, RawPath: u.RawPath}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		full.RawQuery = q.Encode()
	}
	return full.String()
}

// startSpan starts the call's client span. Under the no-op tracer a call whose
// context holds no recording span keeps its context as it is: the tracer would
// return the same non-recording span (or an empty one, as SpanFromContext does
// for a context without a span), and wrapping ctx would cost an allocation.
func (c *Client) startSpan(req *http.Request) (context.Context, trace.Span) {
	ctx := req.Context()
	if c.noSpans {
		if span := trace.SpanFromContext(ctx); !span.IsRecording() {
			return ctx, span
		}
	}
	return c.cfg.Tracer.Start(ctx, c.spanName(req), c.spanStart...)
}

// spanName is the call's span name as OpenTelemetry names it: a gRPC call's
// package.Service/Method, an HTTP call's method alone (its path carries ids; the
// span's service.peer.name says whom it calls).
func (c *Client) spanName(req *http.Request) string {
	if c.cfg.Protocol == GRPC {
		return strings.TrimPrefix(req.URL.Path, "/")
	}
	return req.Method
}

// prepare aims the attempt's private request copy at addr and gives it a header map
// of its own carrying trace context, request id, service token and, for REST, the
// time remaining at now. The caller's request and header map are left untouched.
func (c *Client) prepare(try *http.Request, addr string, now time.Time) (*http.Request, error) {
	ctx := try.Context()
	r := try
	u := *r.URL
	u.Scheme, u.Host = c.scheme, addr
	try.URL, try.Host = &u, addr
	h := make(http.Header, len(r.Header)+4)
	for k, v := range r.Header {
		h[k] = v // values are never modified, only replaced
	}
	try.Header = h
	if trace.SpanContextFromContext(ctx).IsValid() {
		c.cfg.Propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
	if id := telemetry.RequestID(ctx); id != "" && len(h[telemetry.RequestIDHeader]) == 0 {
		h[telemetry.RequestIDHeader] = []string{id}
	}
	if c.cfg.Tokens != nil {
		v, err := c.cfg.Tokens.HeaderValue(c.cfg.Service)
		if err != nil {
			return nil, err
		}
		h[authn.ServiceHeader] = v
	}
	if dl, ok := ctx.Deadline(); ok && c.cfg.Protocol == REST && h.Get("Upgrade") == "" {
		h[TimeoutHeader] = c.remainingHeader(max(dl.Sub(now).Milliseconds(), 1))
	}
	return try, nil
}

// remainingHeader is the TimeoutHeader value for ms, the last one sent when it is the
// same.
func (c *Client) remainingHeader(ms int64) []string {
	if v := c.remaining.Load(); v != nil && v.ms == ms {
		return v.value
	}
	v := &remainingValue{ms: ms, value: []string{strconv.FormatInt(ms, 10)}}
	c.remaining.Store(v)
	return v.value
}

// attempt sends one try to one instance.
func (c *Client) attempt(r *http.Request) (*http.Response, error) {
	key, _ := r.Context().Value(stickyKey{}).(string)
	ep, err := c.bal.PickFor(key)
	if err != nil {
		return nil, &problem.Error{Kind: problem.Unavailable, Detail: "no instance of " + c.cfg.Service + " is available", RetryAfter: time.Second, Err: err}
	}
	start := time.Now()
	try, err := c.prepare(r, ep.Instance.Addr, start)
	if err != nil {
		c.bal.Done(ep, 0, balancer.Canceled)
		return nil, err
	}
	resp, err := c.base.RoundTrip(try)
	outcome := balancer.Success
	switch {
	case err != nil && errors.Is(r.Context().Err(), context.Canceled):
		outcome = balancer.Canceled
	case err != nil && errors.Is(err, syscall.ECONNREFUSED):
		outcome = balancer.Unreachable
	case err != nil, resp.StatusCode >= 500:
		outcome = balancer.Failure
	}
	if end := time.Now(); c.wallClock {
		c.bal.DoneAt(ep, end.Sub(start), outcome, end)
	} else {
		c.bal.Done(ep, end.Sub(start), outcome)
	}
	if outcome == balancer.Failure || outcome == balancer.Unreachable {
		detail := "transport error"
		if resp != nil {
			detail = resp.Status
		}
		trace.SpanFromContext(r.Context()).AddEvent("attempt failed", trace.WithAttributes(
			attribute.String(telemetry.KeyInstance, ep.Instance.ID), attribute.String(telemetry.KeyOutcome, detail)))
	}
	return resp, err
}
