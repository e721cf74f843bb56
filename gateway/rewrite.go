package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/switchyard/switchyard/gateway/transform"
	"github.com/switchyard/switchyard/problem"
)

// upstreamPathKey carries the path a route's rewrite rule chose to the proxy.
type upstreamPathKey struct{}

// transformRequest applies the route's request rules; false means it answered.
func (g *Gateway) transformRequest(w http.ResponseWriter, r *http.Request, rt *route) (*http.Request, bool) {
	path, err := rt.Transform.Request(r)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		g.reject(w, r, "body", problem.New(problem.TooLarge, "the request body is over %d bytes", tooLarge.Limit), 0)
		return r, false
	}
	if err != nil {
		g.reject(w, r, "transform", err, 0)
		return r, false
	}
	if rt.Transform.ResponseBodyRules() {
		// An encoded answer cannot be rewritten: ask for it plain.
		r.Header.Del("Accept-Encoding")
	}
	if path != "" {
		r = r.WithContext(context.WithValue(r.Context(), upstreamPathKey{}, path))
	}
	return r, true
}

// transformWriter applies a route's response rules: headers as the answer
// starts, and, for a successful JSON answer the body rules need, the body once it
// is complete (held up to the rules' limit).
type transformWriter struct {
	http.ResponseWriter
	g     *Gateway
	r     *http.Request
	rules *transform.Rules

	wroteHeader bool
	hold        bool
	status      int
	buf         bytes.Buffer
	over        bool
}

func (tw *transformWriter) WriteHeader(code int) {
	if tw.wroteHeader {
		return
	}
	if code < 200 { // 1xx (a WebSocket's 101 among them) passes as it is
		tw.ResponseWriter.WriteHeader(code)
		return
	}
	tw.wroteHeader, tw.status = true, code
	h := tw.Header()
	tw.rules.ResponseHeaders(h)
	if tw.rules.ResponseBodyRules() && code/100 == 2 && tw.r.Method != http.MethodHead && code != http.StatusNoContent &&
		transform.IsJSON(h.Get("Content-Type")) {
		tw.hold = true
		// The body changes, so these describe another one.
		h.Del("Content-Length")
		h.Del("ETag")
		h.Del("Content-Md5")
		return
	}
	tw.ResponseWriter.WriteHeader(code)
}

func (tw *transformWriter) Write(p []byte) (int, error) {
	if !tw.wroteHeader {
		tw.WriteHeader(http.StatusOK)
	}
	if !tw.hold {
		return tw.ResponseWriter.Write(p)
	}
	if tw.over || int64(tw.buf.Len()+len(p)) > tw.rules.MaxBodyBytes() {
		tw.over = true
		tw.buf.Reset()
		return len(p), nil // read and dropped: the answer is refused at the end
	}
	return tw.buf.Write(p)
}

// Flush passes through, except for a held answer, which goes out whole.
func (tw *transformWriter) Flush() {
	if !tw.hold {
		_ = http.NewResponseController(tw.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (hijacking a WebSocket).
func (tw *transformWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }

// finish sends a held answer, transformed; or refuses it, since passing it on
// untransformed would undo what the rules are for (a response deny list).
func (tw *transformWriter) finish(upstream string) {
	if !tw.hold {
		return
	}
	h := tw.Header()
	if h.Get("Content-Encoding") != "" {
		tw.refuse(h, problem.New(problem.Unavailable, "%s answered with a %s-encoded body this route cannot transform", upstream, h.Get("Content-Encoding")))
		return
	}
	if tw.over {
		tw.refuse(h, problem.New(problem.Unavailable, "%s answered with more than the %d bytes this route's transformation reads", upstream, tw.rules.MaxBodyBytes()))
		return
	}
	out, err := tw.rules.ResponseBody(tw.buf.Bytes())
	if err != nil {
		tw.g.cfg.Logger.WarnContext(tw.r.Context(), "an answer the route transforms is not JSON", "upstream", upstream, "error", err.Error())
		tw.refuse(h, problem.New(problem.Unavailable, "%s answered with JSON this route cannot transform", upstream))
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	tw.ResponseWriter.WriteHeader(tw.status)
	_, _ = tw.ResponseWriter.Write(out)
}

// refuse answers 502: the upstream answered, but not with what the route can pass on.
func (tw *transformWriter) refuse(h http.Header, err *problem.Error) {
	for k := range h {
		if k != "X-Content-Type-Options" && k != "X-Frame-Options" && k != "Referrer-Policy" {
			delete(h, k)
		}
	}
	tw.g.reject(tw.ResponseWriter, tw.r, "transform", err, http.StatusBadGateway)
}
