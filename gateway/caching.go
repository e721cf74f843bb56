package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/authn"
)

// Caching is a route's response cache: an HTTP cache for safe requests (GET and
// HEAD) in front of the route's service, in the sense of RFC 9111, shared by the
// gateway's replicas when Config.Cache is.
//
// What it keeps, and for how long, is the service's to say in Cache-Control
// (s-maxage, else max-age; no-store, no-cache and private keep an answer out),
// unless the route overrides it. Entries are partitioned by the request's path and
// query, the headers the route names in Vary, the Origin when CORS is on, and the
// caller: every request with a
// verified principal is its own variant, so no user is ever served another's
// answer, and an unverified request carrying credentials is not cached at all. An
// answer whose Vary names a header the route does not is not stored.
//
// A hit is answered with Age and Cache-Status (RFC 9211), and with 304 when the
// client's If-None-Match holds the entry's ETag (the gateway gives every entry one
// when the service did not). While the service fails (a 5xx, or no answer), an entry
// past its freshness but within its stale-if-error window (RFC 5861) stands in.
// Invalidate drops every variant of a path at once, across replicas.
type Caching struct {
	// MaxAge is how long an answer is fresh when the service does not say [not
	// stored].
	MaxAge time.Duration
	// Override makes MaxAge (and StaleIfError) win over what the service says.
	Override bool
	// StaleIfError is how long past its freshness an entry may answer for a failing
	// service [the answer's stale-if-error, else none].
	StaleIfError time.Duration
	// Vary lists the request headers, besides the caller, that select a variant.
	Vary []string
	// MaxEntryBytes is the largest answer stored [1 MiB]; larger ones pass.
	MaxEntryBytes int
}

// cacheCounters are a route's cache results, looked up once.
type cacheCounters struct{ hit, miss, stale, bypass prometheus.Counter }

func (m *metrics) cacheCounters(route string) cacheCounters {
	return cacheCounters{hit: m.cache.WithLabelValues(route, "hit"), miss: m.cache.WithLabelValues(route, "miss"),
		stale: m.cache.WithLabelValues(route, "stale"), bypass: m.cache.WithLabelValues(route, "bypass")}
}

// The Cache-Status values the gateway answers with.
const cacheName = "switchyard"

// Invalidate drops every cached variant of the public paths (every query,
// principal and header variant), in every replica sharing the store.
func (g *Gateway) Invalidate(ctx context.Context, paths ...string) error {
	var errs []error
	for _, p := range paths {
		// A new generation for the path: keys of the old one are never read again
		// and expire on their own.
		errs = append(errs, g.cfg.Cache.Set(ctx, generationKey(p), []byte(rand.Text()), generationTTL))
	}
	return errors.Join(errs...)
}

func generationKey(path string) string { return "gw:gen:" + path }

// generationTTL is how long an invalidation is remembered; maxEntryAge, well
// under it, is the longest an entry is kept, whatever the service says.
const (
	generationTTL = 30 * 24 * time.Hour
	maxEntryAge   = 7 * 24 * time.Hour
)

// entry is a stored answer.
type entry struct {
	Status     int
	Header     http.Header
	Stored     int64 // unix nanoseconds
	FreshUntil int64
	StaleUntil int64
	body       []byte
}

// marshal encodes the entry compactly (a hit decodes it, so it is binary, not
// JSON): status, the three times, the header as counted, length-prefixed
// strings, then the body.
func (e *entry) marshal() []byte {
	out := make([]byte, 0, 64+len(e.body))
	out = binary.BigEndian.AppendUint16(out, uint16(e.Status))
	out = binary.BigEndian.AppendUint64(out, uint64(e.Stored))
	out = binary.BigEndian.AppendUint64(out, uint64(e.FreshUntil))
	out = binary.BigEndian.AppendUint64(out, uint64(e.StaleUntil))
	out = binary.AppendUvarint(out, uint64(len(e.Header)))
	str := func(s string) {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	for k, vs := range e.Header {
		str(k)
		out = binary.AppendUvarint(out, uint64(len(vs)))
		for _, v := range vs {
			str(v)
		}
	}
	return append(out, e.body...)
}

func unmarshalEntry(b []byte) (*entry, bool) {
	if len(b) < 26 {
		return nil, false
	}
	e := &entry{Status: int(binary.BigEndian.Uint16(b)), Stored: int64(binary.BigEndian.Uint64(b[2:])),
		FreshUntil: int64(binary.BigEndian.Uint64(b[10:])), StaleUntil: int64(binary.BigEndian.Uint64(b[18:]))}
	b = b[26:]
	ok := true
	uvarint := func() int {
		n, size := binary.Uvarint(b)
		if size <= 0 || n > uint64(len(b)) {
			ok = false
			return 0
		}
		b = b[size:]
		return int(n)
	}
	str := func() string {
		n := uvarint()
		if !ok || n > len(b) {
			ok = false
			return ""
		}
		s := string(b[:n])
		b = b[n:]
		return s
	}
	fields := uvarint()
	e.Header = make(http.Header, fields)
	for i := 0; i < fields && ok; i++ {
		k := str()
		vs := make([]string, uvarint())
		for j := range vs {
			vs[j] = str()
		}
		e.Header[k] = vs
	}
	e.body = b
	return e, ok
}

// cacheKey names the variant r asks for; "" means the request is not cacheable.
func (g *Gateway) cacheKey(ctx context.Context, rt *route, r *http.Request, p *authn.Principal) string {
	if p == nil && (r.Header.Get("Authorization") != "" || r.Header.Get(APIKeyHeader) != "") {
		return "" // credentials nobody verified: what the service does with them is unknown
	}
	gen, _, err := g.cfg.Cache.Get(ctx, generationKey(r.URL.Path))
	if err != nil {
		return ""
	}
	h := sha256.New()
	write := func(s string) {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	write(string(gen))
	write(r.URL.Path)
	write(r.URL.RawQuery)
	for _, name := range rt.Cache.Vary {
		write(strings.Join(r.Header.Values(name), ","))
	}
	if g.cfg.CORS.enabled() {
		write(r.Header.Get("Origin")) // the CORS headers of the answer are the origin's
	}
	if p != nil {
		write(p.Issuer)
		write(p.Subject)
	} else {
		write("") // anonymous
		write("")
	}
	return "gw:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// directives is a parsed Cache-Control.
type directives map[string]string

func parseCacheControl(values []string) directives {
	d := directives{}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				d[name] = strings.Trim(strings.TrimSpace(arg), `"`)
			}
		}
	}
	return d
}

func (d directives) has(name string) bool { _, ok := d[name]; return ok }

// seconds returns a delta-seconds directive, and whether it is present and valid.
func (d directives) seconds(name string) (time.Duration, bool) {
	v, ok := d[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(min(n, 1<<31)) * time.Second, true
}

// serveCached answers from the cache when it can, and otherwise returns the
// writer to serve through, which stores the answer (and stands a stale entry in
// for a failing service) when done.
func (g *Gateway) serveCached(w http.ResponseWriter, r *http.Request, rt *route, p *authn.Principal) (http.ResponseWriter, *cacheWriter, bool) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || isLongPoll(r) {
		return w, nil, false
	}
	hits := rt.cached.bypass
	req := parseCacheControl(r.Header.Values("Cache-Control"))
	if req.has("no-store") {
		hits.Inc()
		w.Header().Set("Cache-Status", cacheName+"; fwd=request")
		return w, nil, false
	}
	key := g.cacheKey(r.Context(), rt, r, p)
	if key == "" {
		hits.Inc()
		w.Header().Set("Cache-Status", cacheName+"; fwd=bypass")
		return w, nil, false
	}
	now := g.now()
	var stale *entry
	if raw, ok, err := g.cfg.Cache.Get(r.Context(), key); err == nil && ok {
		if e, ok := unmarshalEntry(raw); ok {
			maxAge, limited := req.seconds("max-age")
			fresh := now.UnixNano() < e.FreshUntil && !req.has("no-cache") && (!limited || now.Sub(time.Unix(0, e.Stored)) <= maxAge)
			if fresh {
				rt.cached.hit.Inc()
				g.answerFromCache(w, r, e, now, cacheName+"; hit; ttl="+strconv.FormatInt(int64(time.Until(time.Unix(0, e.FreshUntil))/time.Second), 10))
				return w, nil, true
			}
			if now.UnixNano() < e.StaleUntil {
				stale = e
			}
		}
	} else if err != nil {
		g.cfg.Logger.WarnContext(r.Context(), "the response cache cannot be read; passing the request on", "error", err.Error())
	}
	// Ask for the whole answer, to store it; the client's conditions are answered
	// here, from what was stored.
	cw := &cacheWriter{ResponseWriter: w, g: g, r: r, rt: rt, key: key, stale: stale, principal: p != nil,
		inm: r.Header.Get("If-None-Match"), max: cmp0(rt.Cache.MaxEntryBytes, 1<<20)}
	r.Header.Del("If-None-Match")
	r.Header.Del("If-Modified-Since")
	return cw, cw, false
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// answerFromCache writes a stored answer.
func (g *Gateway) answerFromCache(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, status string) {
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("Age", strconv.FormatInt(int64(now.Sub(time.Unix(0, e.Stored))/time.Second), 10))
	h.Set("Cache-Status", status)
	if etag := e.Header.Get("ETag"); etag != "" && matchesETag(r.Header.Get("If-None-Match"), etag) {
		h.Del("Content-Length")
		h.Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
}

// matchesETag is the weak comparison If-None-Match asks for (RFC 9110 section 13.1.2).
func matchesETag(header, etag string) bool {
	if header == "" {
		return false
	}
	if strings.TrimSpace(header) == "*" {
		return true
	}
	etag = strings.TrimPrefix(etag, "W/")
	for tag := range strings.SplitSeq(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(tag), "W/") == etag {
			return true
		}
	}
	return false
}

// cacheWriter holds a cacheable answer until it is complete: then stores it and
// sends it, or, for a failing service, sends the stale entry instead.
type cacheWriter struct {
	http.ResponseWriter
	g         *Gateway
	r         *http.Request
	rt        *route
	key       string
	stale     *entry
	principal bool
	inm       string
	max       int

	status  int
	buf     bytes.Buffer
	passing bool // too large to hold: written through as it comes
}

func (cw *cacheWriter) WriteHeader(code int) {
	if cw.status != 0 || code < 200 {
		return
	}
	cw.status = code
}

func (cw *cacheWriter) Write(p []byte) (int, error) {
	if cw.status == 0 {
		cw.WriteHeader(http.StatusOK)
	}
	if cw.passing {
		return cw.ResponseWriter.Write(p)
	}
	if cw.buf.Len()+len(p) > cw.max && !cw.failing() {
		// Too large to store: send what is held, and the rest as it comes.
		cw.passing = true
		cw.Header().Set("Cache-Status", cacheName+"; fwd=miss; detail=too-large")
		cw.rt.cached.miss.Inc()
		cw.ResponseWriter.WriteHeader(cw.status)
		if _, err := cw.ResponseWriter.Write(cw.buf.Bytes()); err != nil {
			return 0, err
		}
		cw.buf.Reset()
		return cw.ResponseWriter.Write(p)
	}
	return cw.buf.Write(p)
}

// Flush passes through once the answer is too large to hold; until then nothing
// may reach the client, since the status is not yet decided.
func (cw *cacheWriter) Flush() {
	if cw.passing {
		_ = http.NewResponseController(cw.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (cw *cacheWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// failing reports an answer a stale entry may replace.
func (cw *cacheWriter) failing() bool {
	return cw.status >= 500 && cw.stale != nil
}

func (cw *cacheWriter) finish() {
	if cw.passing {
		return
	}
	now := cw.g.now()
	if cw.status == 0 { // the proxy wrote nothing: the client went away
		return
	}
	if cw.failing() {
		cw.rt.cached.stale.Inc()
		for k := range cw.Header() {
			if !isSecurityHeader(k) {
				delete(cw.Header(), k)
			}
		}
		cw.r.Header.Set("If-None-Match", cw.inm)
		cw.g.answerFromCache(cw.ResponseWriter, cw.r, cw.stale, now,
			cacheName+"; fwd=stale; fwd-status="+strconv.Itoa(cw.status)+"; detail=stale-if-error")
		return
	}
	h := cw.Header()
	stored := cw.store(now)
	cw.rt.cached.miss.Inc()
	status := cacheName + "; fwd=uri-miss"
	if stored {
		status += "; stored"
	}
	h.Set("Cache-Status", status)
	if etag := h.Get("ETag"); stored && etag != "" && matchesETag(cw.inm, etag) {
		h.Del("Content-Length")
		h.Del("Content-Type")
		cw.ResponseWriter.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(cw.buf.Len()))
	cw.ResponseWriter.WriteHeader(cw.status)
	_, _ = cw.ResponseWriter.Write(cw.buf.Bytes())
}

func isSecurityHeader(k string) bool {
	return k == "X-Content-Type-Options" || k == "X-Frame-Options" || k == "Referrer-Policy"
}

// store keeps the answer when HTTP's rules and the route's allow it.
func (cw *cacheWriter) store(now time.Time) bool {
	h, c := cw.Header(), cw.rt.Cache
	if cw.status != http.StatusOK || cw.r.Method != http.MethodGet || h.Get("Set-Cookie") != "" {
		return false
	}
	for _, v := range h.Values("Vary") {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" || strings.EqualFold(name, "Accept-Encoding") { // the gateway asks for what it sends
				continue
			}
			if strings.EqualFold(name, "Origin") && cw.g.cfg.CORS.enabled() { // in the key
				continue
			}
			if name == "*" || !slices.ContainsFunc(c.Vary, func(v string) bool { return strings.EqualFold(v, name) }) {
				return false // a variant the key does not tell apart
			}
		}
	}
	d := parseCacheControl(h.Values("Cache-Control"))
	fresh, staleFor := c.MaxAge, c.StaleIfError
	if !c.Override {
		if d.has("no-store") || d.has("no-cache") || (d.has("private") && !cw.principal) {
			return false
		}
		if s, ok := d.seconds("s-maxage"); ok {
			fresh = s
		} else if s, ok := d.seconds("max-age"); ok {
			fresh = s
		}
		if s, ok := d.seconds("stale-if-error"); ok {
			staleFor = s
		}
		if d.has("must-revalidate") || d.has("proxy-revalidate") {
			staleFor = 0
		}
	}
	if fresh <= 0 && staleFor <= 0 {
		return false
	}
	// An entry never outlives its path's generation (Invalidate keeps one for 30
	// days), or a lost generation would bring back what it invalidated.
	fresh, staleFor = min(fresh, maxEntryAge), min(staleFor, maxEntryAge-min(fresh, maxEntryAge))
	if h.Get("ETag") == "" {
		sum := sha256.Sum256(cw.buf.Bytes())
		h.Set("ETag", `"`+base64.RawURLEncoding.EncodeToString(sum[:12])+`"`)
	}
	e := &entry{Status: cw.status, Header: storedHeader(h), Stored: now.UnixNano(),
		FreshUntil: now.Add(fresh).UnixNano(), StaleUntil: now.Add(fresh + staleFor).UnixNano(), body: cw.buf.Bytes()}
	if err := cw.g.cfg.Cache.Set(cw.r.Context(), cw.key, e.marshal(), fresh+staleFor); err != nil {
		cw.g.cfg.Logger.WarnContext(cw.r.Context(), "the response cache cannot be written", "error", err.Error())
		return false
	}
	return true
}

// storedHeader is what of an answer's header a cached copy repeats.
func storedHeader(h http.Header) http.Header {
	out := http.Header{}
	for k, vs := range h {
		switch k {
		case "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Date", "Age", "Cache-Status", "Set-Cookie":
			continue
		}
		if isSecurityHeader(k) {
			continue // every answer gets them anyway
		}
		out[k] = slices.Clone(vs)
	}
	return out
}
