package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/telemetry"
)

// proxy builds the reverse proxy of one route toward one upstream.
func (g *Gateway) proxy(rt *route, up Upstream, side string) *httputil.ReverseProxy {
	routed := g.metrics.canary.WithLabelValues(rt.Prefix, side)
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			in, out := pr.In, pr.Out
			out.URL.Scheme, out.URL.Host, out.Host = "http", up.Host, up.Host
			if rewritten, ok := in.Context().Value(upstreamPathKey{}).(string); ok {
				out.URL.RawPath = rewritten
				out.URL.Path, _ = url.PathUnescape(rewritten) // escaped by the rule from an escaped path
			} else {
				out.URL.Path = rt.Path + strings.TrimPrefix(in.URL.Path, rt.Prefix)
				if in.URL.RawPath != "" {
					out.URL.RawPath = rt.Path + strings.TrimPrefix(in.URL.EscapedPath(), rt.Prefix)
				}
			}
			pr.SetXForwarded()
		},
		Transport:  up.Transport,
		BufferPool: buffers{},
		ModifyResponse: func(resp *http.Response) error {
			routed.Inc()
			// The gateway already answers with the request id it passed on.
			resp.Header.Del(telemetry.RequestIDHeader)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { g.upstreamFailed(w, r, up, err) },
		ErrorLog:     slog.NewLogLogger(g.cfg.Logger.Handler(), slog.LevelDebug),
	}
}

// upstreamFailed answers for an upstream that gave no answer.
func (g *Gateway) upstreamFailed(w http.ResponseWriter, r *http.Request, up Upstream, err error) {
	var tooLarge *http.MaxBytesError
	var p *problem.Error
	switch {
	case errors.As(err, &tooLarge):
		g.reject(w, r, "body", problem.New(problem.TooLarge, "the request body is over %d bytes", tooLarge.Limit), 0)
	case errors.Is(r.Context().Err(), context.Canceled):
		w.WriteHeader(499) // the client left; nobody reads this
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(r.Context().Err(), context.DeadlineExceeded):
		g.reject(w, r, "timeout", problem.New(problem.Timeout, "%s did not answer within the route's deadline", up.Name), 0)
	case errors.As(err, &p) && p.Kind == problem.Unavailable:
		if p.RetryAfter == 0 {
			p = &problem.Error{Kind: p.Kind, Detail: p.Detail, RetryAfter: time.Second, Err: p.Err}
		}
		g.reject(w, r, "unavailable", p, 0)
	case errors.As(err, &p):
		g.reject(w, r, "upstream", p, 0)
	default:
		g.cfg.Logger.WarnContext(r.Context(), "upstream failed", "upstream", up.Name, "error", err.Error())
		g.reject(w, r, "unavailable", &problem.Error{Kind: problem.Unavailable, Detail: up.Name + " is unavailable", RetryAfter: time.Second, Err: err}, 0)
	}
}

var bufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// buffers lends the reverse proxy its copy buffers.
type buffers struct{}

func (buffers) Get() []byte  { return *bufferPool.Get().(*[]byte) }
func (buffers) Put(b []byte) { bufferPool.Put(&b) }
