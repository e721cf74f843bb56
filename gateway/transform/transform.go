// Package transform rewrites what passes through a gateway route, by rules the
// route declares: headers set and removed, query parameters renamed and dropped,
// the path rewritten from captured segments, JSON body fields allowed, denied and
// renamed (on the way in and on the way out), and a template that reshapes the
// answer.
//
// Rules are checked when they are loaded (Spec.Check names the offending key) and
// compiled once (Compile); applying them allocates only for the parts they touch.
// A body is transformed only when it is JSON and within the rules' limit: a request
// body a rule needs that is not JSON, or is over the limit, is refused (415, 413)
// rather than passed on untransformed, since a deny list that a large or oddly typed
// body slipped past would be no deny list. Bodies no rule needs are never read.
//
// The order is fixed, so a route's rules read top to bottom: headers, query, path,
// then body fields (deny or allow, then rename); on the way out headers, then body
// fields, then the template, which sees the fields as renamed.
//
// No library does this for net/http without a whole gateway around it (Kong's
// request-transformer and Envoy's filters are configuration of their own proxies),
// hence this package.
package transform

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/switchyard/switchyard/internal/tmpl"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
)

// DefaultMaxBodyBytes is the largest body the rules read [1 MiB].
const DefaultMaxBodyBytes = 1 << 20

// Spec is a route's declared rules, as switchyard.yaml writes them under a
// route's transform key.
type Spec struct {
	// Request rules apply to the request before it goes upstream.
	Request Request `yaml:"request"`
	// Response rules apply to successful (2xx) answers before they reach the client.
	Response Response `yaml:"response"`
	// MaxBodyBytes is the largest body a body rule reads [DefaultMaxBodyBytes].
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Request is what is changed on the way in.
type Request struct {
	// Headers to set and remove.
	Headers Headers `yaml:"headers"`
	// Query parameters to rename and drop.
	Query Query `yaml:"query"`
	// Rewrite maps public paths onto upstream paths; the first that matches wins,
	// and a path none matches goes upstream as the route's prefix rule says.
	Rewrite []Rewrite `yaml:"rewrite"`
	// Body rules for JSON request bodies.
	Body Body `yaml:"body"`
}

// Response is what is changed on the way out.
type Response struct {
	// Headers to set and remove.
	Headers Headers `yaml:"headers"`
	// Body rules for JSON answers.
	Body Body `yaml:"body"`
	// Template, when set, is the answer's new shape: any JSON value in which a
	// string "{{response.a.b}}" stands for the value at a.b of the answer (after the
	// body rules), with its type, and a reference inside a longer string for its
	// text; {{response}} is the whole answer; numeric segments index arrays
	// (items.0.sku). The syntax is every switchyard.yaml template's.
	Template any `yaml:"template"`
}

// Headers sets and removes header fields. Remove runs first, so a header can be
// replaced.
type Headers struct {
	// Set gives fields their value, replacing any the message carries.
	Set map[string]string `yaml:"set"`
	// Remove deletes fields.
	Remove []string `yaml:"remove"`
}

// Query renames and drops query parameters.
type Query struct {
	// Rename moves a parameter's values to another name (replacing that name's).
	Rename map[string]string `yaml:"rename"`
	// Drop deletes parameters.
	Drop []string `yaml:"drop"`
}

// Rewrite maps a public path pattern onto an upstream path.
type Rewrite struct {
	// Match is a path whose segments are literal or captures: {name} matches one
	// segment, {name...} (last) the rest of the path. It starts with the route's
	// prefix.
	Match string `yaml:"match"`
	// To is the upstream path, naming captures of Match as {name}.
	To string `yaml:"to"`
}

// Body rules name fields by dotted paths (customer.email); a path crossing an
// array applies to each of its elements (items.cost is every item's cost).
type Body struct {
	// Allow keeps these fields (and what is under them) and drops every other.
	Allow []string `yaml:"allow"`
	// Deny drops these fields.
	Deny []string `yaml:"deny"`
	// Rename gives a field (a dotted path) a new name (one key, in the same
	// object).
	Rename map[string]string `yaml:"rename"`
}

// Empty reports a Body with no rules.
func (b Body) Empty() bool { return len(b.Allow) == 0 && len(b.Deny) == 0 && len(b.Rename) == 0 }

// Issue is one problem of a Spec: the key under the route's transform key
// (request.headers.set.X-User-Id), and what is wrong.
type Issue struct {
	Key string
	Msg string
}

// framing headers are net/http's to write; no rule sets or removes them.
var framing = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Upgrade": true, "Host": true, "Te": true, "Trailer": true}

// credentials and identities reach a service from the client's token and the
// gateway's identity only, so no request rule sets them.
var credentials = map[string]bool{"Authorization": true, "Service-Authorization": true, "X-User-Id": true, "X-User-Roles": true, "Cookie": true}

// Check returns every problem of s, for a route whose public prefix is prefix.
func (s *Spec) Check(prefix string) []Issue {
	var issues []Issue
	bad := func(key, format string, args ...any) {
		issues = append(issues, Issue{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if s.MaxBodyBytes < 0 {
		bad("max_body_bytes", "must not be negative")
	}
	checkHeaders := func(key string, h Headers, request bool) {
		for _, name := range slices.Sorted(maps.Keys(h.Set)) {
			k, c := key+".set."+name, http.CanonicalHeaderKey(name)
			switch {
			case !httpguts.ValidHeaderFieldName(name):
				bad(k, "%q is not a header name", name)
			case framing[c]:
				bad(k, "%s frames the message, which is net/http's to do", c)
			case request && credentials[c]:
				bad(k, "%s may not be set by a rule: credentials and identities come from the caller's token and the gateway only", c)
			case !httpguts.ValidHeaderFieldValue(h.Set[name]):
				bad(k, "the value has characters a header may not carry")
			}
		}
		for i, name := range h.Remove {
			k, c := fmt.Sprintf("%s.remove.%d", key, i), http.CanonicalHeaderKey(name)
			switch {
			case !httpguts.ValidHeaderFieldName(name):
				bad(k, "%q is not a header name", name)
			case framing[c]:
				bad(k, "%s frames the message, which is net/http's to do", c)
			case request && (c == "X-User-Id" || c == "X-User-Roles" || c == "Service-Authorization"):
				bad(k, "%s is set by the gateway on every request; removing it does nothing", c)
			}
		}
	}
	checkHeaders("request.headers", s.Request.Headers, true)
	checkHeaders("response.headers", s.Response.Headers, false)

	for _, from := range slices.Sorted(maps.Keys(s.Request.Query.Rename)) {
		if to := s.Request.Query.Rename[from]; from == "" || to == "" || to == from {
			bad("request.query.rename."+from, "renames a parameter to another, non-empty name; got %q to %q", from, to)
		}
	}
	for i, name := range s.Request.Query.Drop {
		if name == "" {
			bad(fmt.Sprintf("request.query.drop.%d", i), "a parameter name is required")
		}
	}
	for i, rw := range s.Request.Rewrite {
		if _, err := compileRewrite(rw, prefix); err != nil {
			bad(fmt.Sprintf("request.rewrite.%d", i), "%v", err)
		}
	}
	checkBody := func(key string, b Body) {
		if len(b.Allow) > 0 && len(b.Deny) > 0 {
			bad(key, "allow or deny, not both: an allow list already drops every other field")
		}
		for i, f := range b.Allow {
			if err := checkField(f); err != nil {
				bad(fmt.Sprintf("%s.allow.%d", key, i), "%v", err)
			}
		}
		for i, f := range b.Deny {
			if err := checkField(f); err != nil {
				bad(fmt.Sprintf("%s.deny.%d", key, i), "%v", err)
			}
		}
		for _, from := range slices.Sorted(maps.Keys(b.Rename)) {
			to := b.Rename[from]
			if err := checkField(from); err != nil {
				bad(key+".rename", "%s: %v", from, err)
			} else if to == "" || strings.ContainsAny(to, ".") {
				bad(key+".rename", "%s: the new name is one key, without dots, got %q", from, to)
			}
		}
	}
	checkBody("request.body", s.Request.Body)
	checkBody("response.body", s.Response.Body)
	if s.Response.Template != nil {
		if err := checkTemplate(s.Response.Template); err != nil {
			bad("response.template", "%v", err)
		}
	}
	return issues
}

func checkField(f string) error {
	if f == "" {
		return fmt.Errorf("a field path is required")
	}
	for seg := range strings.SplitSeq(f, ".") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment", f)
		}
	}
	return nil
}

// Rules are a Spec compiled. A nil *Rules changes nothing.
type Rules struct {
	max int64

	setIn, setOut       http.Header
	removeIn, removeOut []string
	renameQuery         map[string]string
	dropQuery           []string
	rewrites            []rewrite
	in, out             bodyRules
	template            any
}

// Compile checks s (as Check does) and compiles it; the error lists every issue.
func Compile(s Spec, prefix string) (*Rules, error) {
	if issues := s.Check(prefix); len(issues) > 0 {
		msgs := make([]string, len(issues))
		for i, is := range issues {
			msgs[i] = is.Key + ": " + is.Msg
		}
		return nil, fmt.Errorf("transform: %s", strings.Join(msgs, "; "))
	}
	r := &Rules{max: s.MaxBodyBytes, renameQuery: s.Request.Query.Rename, dropQuery: s.Request.Query.Drop,
		in: compileBody(s.Request.Body), out: compileBody(s.Response.Body)}
	if r.max == 0 {
		r.max = DefaultMaxBodyBytes
	}
	r.setIn, r.removeIn = compileHeaders(s.Request.Headers)
	r.setOut, r.removeOut = compileHeaders(s.Response.Headers)
	for _, rw := range s.Request.Rewrite {
		c, _ := compileRewrite(rw, prefix) // checked above
		r.rewrites = append(r.rewrites, c)
	}
	r.template = s.Response.Template
	return r, nil
}

func compileHeaders(h Headers) (http.Header, []string) {
	set := http.Header{}
	for k, v := range h.Set {
		set[http.CanonicalHeaderKey(k)] = []string{v}
	}
	remove := make([]string, len(h.Remove))
	for i, k := range h.Remove {
		remove[i] = http.CanonicalHeaderKey(k)
	}
	return set, remove
}

// Request applies the request rules to r, in place, and returns the upstream path
// (escaped) when a rewrite matched, else "". Its errors are problems to answer
// with: the body is over the limit (413), or not JSON though a rule needs it
// (415), or not well-formed (400).
func (rs *Rules) Request(r *http.Request) (string, error) {
	if rs == nil {
		return "", nil
	}
	for _, k := range rs.removeIn {
		delete(r.Header, k)
	}
	for k, v := range rs.setIn {
		r.Header[k] = v
	}
	if len(rs.renameQuery) > 0 || len(rs.dropQuery) > 0 {
		q := r.URL.Query()
		for from, to := range rs.renameQuery {
			if vs, ok := q[from]; ok {
				delete(q, from)
				q[to] = vs
			}
		}
		for _, k := range rs.dropQuery {
			delete(q, k)
		}
		r.URL.RawQuery = q.Encode()
	}
	var path string
	for _, rw := range rs.rewrites {
		if p, ok := rw.apply(r.URL.EscapedPath()); ok {
			path = p
			break
		}
	}
	if rs.in.empty() || r.Body == nil || r.Body == http.NoBody {
		return path, nil
	}
	body, err := rs.read(r.Body, r.Header.Get("Content-Type"), "request body")
	if err != nil {
		return "", err
	}
	if body == nil { // empty
		return path, nil
	}
	if err := rest.CheckDuplicateKeys(body); err != nil {
		return "", err // a key the rules keep or drop once must not come back twice
	}
	out, err := rs.in.apply(body)
	if err != nil {
		return "", problem.New(problem.Invalid, "the request body is not well-formed JSON: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.ContentLength = int64(len(out))
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return path, nil
}

// read reads a body a rule needs: JSON, and within the limit.
func (rs *Rules) read(body io.Reader, contentType, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, rs.max+1))
	if err != nil {
		return nil, err // a *http.MaxBytesError of the route's own limit, among others
	}
	if len(b) == 0 {
		return nil, nil
	}
	if !IsJSON(contentType) {
		return nil, problem.New(problem.Unsupported, "this route rewrites JSON in its %s; send application/json, not %q", what, contentType)
	}
	if int64(len(b)) > rs.max {
		return nil, problem.New(problem.TooLarge, "the %s is over the %d bytes this route's transformation reads", what, rs.max)
	}
	return b, nil
}

// IsJSON reports a JSON media type: application/json or any +json.
func IsJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// ResponseHeaders applies the response header rules to h.
func (rs *Rules) ResponseHeaders(h http.Header) {
	if rs == nil {
		return
	}
	for _, k := range rs.removeOut {
		delete(h, k)
	}
	for k, v := range rs.setOut {
		h[k] = v
	}
}

// ResponseBodyRules reports whether the rules rewrite answers' bodies.
func (rs *Rules) ResponseBodyRules() bool {
	return rs != nil && (!rs.out.empty() || rs.template != nil)
}

// Transforms reports whether the rules change anything of the answer.
func (rs *Rules) Transforms() bool {
	return rs != nil && (rs.ResponseBodyRules() || len(rs.setOut) > 0 || len(rs.removeOut) > 0)
}

// MaxBodyBytes is the largest body the rules read.
func (rs *Rules) MaxBodyBytes() int64 { return rs.max }

// ResponseBody applies the response body rules and the template to a JSON answer.
func (rs *Rules) ResponseBody(b []byte) ([]byte, error) {
	if !rs.ResponseBodyRules() {
		return b, nil
	}
	v, err := decode(b)
	if err != nil {
		return nil, err
	}
	v = rs.out.transform(v)
	if rs.template != nil {
		v = tmpl.Render(rs.template, &tmpl.Vars{Response: v})
	}
	return encode(v)
}

func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // numbers pass through exactly as they came
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bodyRules are Body compiled: the fields as paths, the allow list as a tree.
type bodyRules struct {
	allow  *fieldTree
	deny   [][]string
	rename []renameRule
}

type renameRule struct {
	parent []string
	from   string
	to     string
}

func compileBody(b Body) bodyRules {
	var r bodyRules
	if len(b.Allow) > 0 {
		r.allow = &fieldTree{}
		for _, f := range b.Allow {
			r.allow.add(strings.Split(f, "."))
		}
	}
	for _, f := range b.Deny {
		r.deny = append(r.deny, strings.Split(f, "."))
	}
	for _, from := range slices.Sorted(maps.Keys(b.Rename)) {
		p := strings.Split(from, ".")
		r.rename = append(r.rename, renameRule{parent: p[:len(p)-1], from: p[len(p)-1], to: b.Rename[from]})
	}
	return r
}

func (r bodyRules) empty() bool { return r.allow == nil && len(r.deny) == 0 && len(r.rename) == 0 }

func (r bodyRules) apply(b []byte) ([]byte, error) {
	v, err := decode(b)
	if err != nil {
		return nil, err
	}
	return encode(r.transform(v))
}

func (r bodyRules) transform(v any) any {
	if r.allow != nil {
		v, _ = r.allow.keep(v)
	}
	for _, p := range r.deny {
		deny(v, p)
	}
	for _, rn := range r.rename {
		at(v, rn.parent, func(m map[string]any) {
			if x, ok := m[rn.from]; ok {
				delete(m, rn.from)
				m[rn.to] = x
			}
		})
	}
	return v
}

// fieldTree is an allow list: a leaf keeps its whole value.
type fieldTree struct {
	leaf     bool
	children map[string]*fieldTree
}

func (t *fieldTree) add(path []string) {
	if len(path) == 0 {
		t.leaf = true
		return
	}
	if t.children == nil {
		t.children = map[string]*fieldTree{}
	}
	c := t.children[path[0]]
	if c == nil {
		c = &fieldTree{}
		t.children[path[0]] = c
	}
	c.add(path[1:])
}

// keep returns what of v the tree allows, and false when nothing is.
func (t *fieldTree) keep(v any) (any, bool) {
	if t.leaf {
		return v, true
	}
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			c := t.children[k]
			if c == nil {
				delete(x, k)
				continue
			}
			if kept, ok := c.keep(child); ok {
				x[k] = kept
			} else {
				delete(x, k)
			}
		}
		return x, true
	case []any:
		out := x[:0]
		for _, e := range x {
			if kept, ok := t.keep(e); ok {
				out = append(out, kept)
			}
		}
		return out, true
	default:
		// A scalar where the list expects an object: only some of it is allowed, so
		// none of it is.
		return nil, false
	}
}

func deny(v any, path []string) {
	at(v, path[:len(path)-1], func(m map[string]any) { delete(m, path[len(path)-1]) })
}

// at calls fn with every object at path under v, crossing arrays.
func at(v any, path []string, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if len(path) == 0 {
			fn(x)
			return
		}
		if child, ok := x[path[0]]; ok {
			at(child, path[1:], fn)
		}
	case []any:
		for _, e := range x {
			at(e, path, fn)
		}
	}
}

// rewrite is a Rewrite compiled.
type rewrite struct {
	match []segment
	to    []segment
}

type segment struct {
	literal string
	capture string
	rest    bool
}

func parsePattern(p string, what string) ([]segment, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%s %q is not a path (it starts with /)", what, p)
	}
	if strings.ContainsAny(p, "?# \t") {
		return nil, fmt.Errorf("%s %q is a path alone: no query, fragment or spaces", what, p)
	}
	var segs []segment
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, part := range parts {
		switch {
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			name := part[1 : len(part)-1]
			rest := strings.HasSuffix(name, "...")
			name = strings.TrimSuffix(name, "...")
			if name == "" || strings.ContainsAny(name, "{}./") {
				return nil, fmt.Errorf("%s %q: %q is no capture; write {name} or {name...}", what, p, part)
			}
			if rest && i != len(parts)-1 {
				return nil, fmt.Errorf("%s %q: {%s...} captures the rest of the path, so it comes last", what, p, name)
			}
			segs = append(segs, segment{capture: name, rest: rest})
		case strings.ContainsAny(part, "{}"):
			return nil, fmt.Errorf("%s %q: a capture is a whole segment, {name}; got %q", what, p, part)
		default:
			segs = append(segs, segment{literal: part})
		}
	}
	return segs, nil
}

func compileRewrite(rw Rewrite, prefix string) (rewrite, error) {
	match, err := parsePattern(rw.Match, "match")
	if err != nil {
		return rewrite{}, err
	}
	if prefix != "" && rw.Match != prefix && !strings.HasPrefix(rw.Match, strings.TrimSuffix(prefix, "/")+"/") {
		return rewrite{}, fmt.Errorf("match %q is not under the route's prefix %s", rw.Match, prefix)
	}
	to, err := parsePattern(rw.To, "to")
	if err != nil {
		return rewrite{}, err
	}
	names := map[string]bool{}
	for _, s := range match {
		if s.capture != "" {
			if names[s.capture] {
				return rewrite{}, fmt.Errorf("match %q captures {%s} twice", rw.Match, s.capture)
			}
			names[s.capture] = true
		}
	}
	for _, s := range to {
		if s.capture != "" && !names[s.capture] {
			return rewrite{}, fmt.Errorf("to %q names {%s}, which match %q does not capture", rw.To, s.capture, rw.Match)
		}
	}
	return rewrite{match: match, to: to}, nil
}

// apply matches an escaped path and returns the upstream path, escaped.
func (rw rewrite) apply(path string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	captured := map[string]string{}
	for i, s := range rw.match {
		switch {
		case s.rest:
			if i >= len(parts) {
				return "", false
			}
			captured[s.capture] = strings.Join(parts[i:], "/")
			parts = parts[:i] // consumed
		case i >= len(parts):
			return "", false
		case s.capture != "":
			if parts[i] == "" {
				return "", false
			}
			captured[s.capture] = parts[i]
		case parts[i] != s.literal:
			return "", false
		}
	}
	if last := rw.match[len(rw.match)-1]; !last.rest && len(parts) != len(rw.match) {
		return "", false
	}
	var b strings.Builder
	for _, s := range rw.to {
		b.WriteByte('/')
		if s.capture != "" {
			b.WriteString(captured[s.capture])
		} else {
			b.WriteString(url.PathEscape(s.literal))
		}
	}
	return b.String(), true
}

// checkTemplate checks a response template: JSON values only, references to the
// response only.
func checkTemplate(v any) error {
	if err := jsonOnly(v, ""); err != nil {
		return err
	}
	return tmpl.Check(v, tmpl.Scope{Response: true})
}

// jsonOnly refuses a value JSON cannot carry, naming where it is (a.1).
func jsonOnly(v any, at string) error {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if err := jsonOnly(x[k], strings.TrimPrefix(at+"."+k, ".")); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := jsonOnly(e, strings.TrimPrefix(fmt.Sprintf("%s.%d", at, i), ".")); err != nil {
				return err
			}
		}
	case string, nil, bool, float64, int, int64, uint64, json.Number:
	default:
		return fmt.Errorf("%s: a template is JSON: objects, arrays, strings, numbers, booleans, null; got %T", cmp.Or(at, "the template"), v)
	}
	return nil
}
