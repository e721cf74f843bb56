// Package contract checks real HTTP exchanges against an OpenAPI 3 document, so a
// test suite proves that what a service serves is what its contract says.
//
// A [Checker] is an http.RoundTripper to put under a test's client. For every
// exchange it checks that
//
//   - the request matches an operation of the document (method and path template);
//   - every response — errors included — has a status the operation declares and a
//     body that matches its schema;
//   - every request the server accepted (2xx) matches the request schema: a server
//     that accepts what its contract forbids is out of contract too.
//
// Requests a test sends malformed on purpose are not held against the contract when
// the server rejects them. [Checker.Operations] tells which operations a suite
// exercised, so a test can require that every declared route was served.
package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Load reads and validates the OpenAPI document name in fsys.
func Load(fsys fs.FS, name string) (*openapi3.T, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("contract %s: %w", name, err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		return nil, fmt.Errorf("contract %s: %w", name, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("contract %s is not a valid OpenAPI document: %w", name, err)
	}
	return doc, nil
}

// Checker validates exchanges passing through it.
type Checker struct {
	router routers.Router
	next   http.RoundTripper

	mu   sync.Mutex
	errs []string
	ops  map[string]int
}

// NewChecker returns a checker for doc that sends requests on with next
// (http.DefaultTransport when nil). The document's servers are ignored: requests are
// matched on method and path only, whatever host a test server runs on.
func NewChecker(doc *openapi3.T, next http.RoundTripper) (*Checker, error) {
	if next == nil {
		next = http.DefaultTransport
	}
	local := *doc
	local.Servers = nil
	router, err := gorillamux.NewRouter(&local)
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	return &Checker{router: router, next: next, ops: map[string]int{}}, nil
}

func (c *Checker) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// RoundTrip implements http.RoundTripper.
func (c *Checker) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	route, params, routeErr := c.router.FindRoute(req)

	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	name := req.Method + " " + req.URL.Path
	if routeErr != nil {
		c.fail("%s: no operation in the contract (%v)", name, routeErr)
		return resp, nil
	}
	c.mu.Lock()
	c.ops[route.Method+" "+route.Path]++
	c.mu.Unlock()

	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))

	ctx := context.Background()
	checkReq := req.Clone(ctx)
	checkReq.Body = io.NopCloser(bytes.NewReader(reqBody))
	input := &openapi3filter.RequestValidationInput{
		Request: checkReq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	if resp.StatusCode < 300 {
		if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
			c.fail("%s: the server accepted (%d) a request outside the contract: %v", name, resp.StatusCode, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.fail("%s → %d: response outside the contract: %v\nbody: %.300s", name, resp.StatusCode, err, respBody)
	}
	return resp, nil
}

// Errors returns every violation seen so far.
func (c *Checker) Errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
}

// Operations returns how often each operation ("GET /v1/products/{id}") was called.
func (c *Checker) Operations() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.ops))
	for k, v := range c.ops {
		out[k] = v
	}
	return out
}

// Declared lists every operation of doc as "METHOD /path/template".
func Declared(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}
