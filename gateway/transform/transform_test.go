package transform_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/gateway/transform"
	"github.com/switchyard/switchyard/problem"
)

func compile(t *testing.T, s transform.Spec) *transform.Rules {
	t.Helper()
	rs, err := transform.Compile(s, "/api/v1/shop")
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// jsonEqual compares two JSON texts as values.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("not JSON: %s (%v)", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("the test's own JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestHeaderRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		headers   transform.Headers
		in, want  http.Header
		responses bool
	}{
		{"set adds", transform.Headers{Set: map[string]string{"x-client": "storefront"}},
			http.Header{}, http.Header{"X-Client": {"storefront"}}, false},
		{"set replaces every value", transform.Headers{Set: map[string]string{"X-Client": "storefront"}},
			http.Header{"X-Client": {"a", "b"}}, http.Header{"X-Client": {"storefront"}}, false},
		{"remove deletes", transform.Headers{Remove: []string{"x-debug"}},
			http.Header{"X-Debug": {"1"}, "Accept": {"*/*"}}, http.Header{"Accept": {"*/*"}}, false},
		{"remove then set replaces", transform.Headers{Set: map[string]string{"X-V": "2"}, Remove: []string{"X-V"}},
			http.Header{"X-V": {"1"}}, http.Header{"X-V": {"2"}}, false},
		{"an answer's server header goes", transform.Headers{Remove: []string{"Server", "X-Powered-By"}, Set: map[string]string{"Cache-Control": "no-store"}},
			http.Header{"Server": {"legacy/1.0"}, "X-Powered-By": {"PHP"}}, http.Header{"Cache-Control": {"no-store"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s transform.Spec
			if tc.responses {
				s.Response.Headers = tc.headers
			} else {
				s.Request.Headers = tc.headers
			}
			rs := compile(t, s)
			h := tc.in.Clone()
			if tc.responses {
				rs.ResponseHeaders(h)
			} else {
				r := httptest.NewRequest("GET", "/api/v1/shop", nil)
				r.Header = h
				if _, err := rs.Request(r); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(h, tc.want) {
				t.Errorf("got %v, want %v", h, tc.want)
			}
		})
	}
}

func TestQueryRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, query, want string
		rules             transform.Query
	}{
		{"rename", "q=shoes&page=2", "page=2&search=shoes", transform.Query{Rename: map[string]string{"q": "search"}}},
		{"rename keeps every value", "tag=a&tag=b", "label=a&label=b", transform.Query{Rename: map[string]string{"tag": "label"}}},
		{"rename replaces the target", "q=new&search=old", "search=new", transform.Query{Rename: map[string]string{"q": "search"}}},
		{"drop", "debug=1&page=2", "page=2", transform.Query{Drop: []string{"debug"}}},
		{"absent parameters change nothing", "page=2", "page=2", transform.Query{Rename: map[string]string{"q": "search"}, Drop: []string{"debug"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := compile(t, transform.Spec{Request: transform.Request{Query: tc.rules}})
			r := httptest.NewRequest("GET", "/api/v1/shop?"+tc.query, nil)
			if _, err := rs.Request(r); err != nil {
				t.Fatal(err)
			}
			if r.URL.RawQuery != tc.want {
				t.Errorf("query %q, want %q", r.URL.RawQuery, tc.want)
			}
		})
	}
}

func TestRewriteRules(t *testing.T) {
	t.Parallel()
	rules := []transform.Rewrite{
		{Match: "/api/v1/shop/products/{id}/stock", To: "/v1/inventory/{id}"},
		{Match: "/api/v1/shop/legacy/{rest...}", To: "/old/{rest}"},
		{Match: "/api/v1/shop/{kind}/{id}", To: "/v2/{kind}/items/{id}"},
	}
	rs := compile(t, transform.Spec{Request: transform.Request{Rewrite: rules}})
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/shop/products/p-1/stock", "/v1/inventory/p-1"},
		{"/api/v1/shop/products/p%2F1/stock", "/v1/inventory/p%2F1"}, // an escaped slash stays one segment
		{"/api/v1/shop/legacy/a/b/c", "/old/a/b/c"},
		{"/api/v1/shop/books/42", "/v2/books/items/42"},
		{"/api/v1/shop/products/p-1/stock/extra", ""}, // longer than every pattern
		{"/api/v1/shop/products", ""},
		{"/api/v1/shop//42", ""}, // an empty segment captures nothing
	} {
		r := httptest.NewRequest("GET", tc.path, nil)
		got, err := rs.Request(r)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s → %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestBodyRules(t *testing.T) {
	t.Parallel()
	order := `{"sku":"p-1","qty":2,"price":1,"status":"paid","customer":{"name":"Ada","email":"ada@example.com"},
		"items":[{"sku":"a","cost":3,"qty":1},{"sku":"b","cost":4,"qty":2}]}`
	for _, tc := range []struct {
		name string
		body transform.Body
		want string
	}{
		{"deny drops fields", transform.Body{Deny: []string{"price", "status"}},
			`{"sku":"p-1","qty":2,"customer":{"name":"Ada","email":"ada@example.com"},"items":[{"sku":"a","cost":3,"qty":1},{"sku":"b","cost":4,"qty":2}]}`},
		{"deny reaches into objects and across arrays", transform.Body{Deny: []string{"customer.email", "items.cost"}},
			`{"sku":"p-1","qty":2,"price":1,"status":"paid","customer":{"name":"Ada"},"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}`},
		{"allow keeps only what it names", transform.Body{Allow: []string{"sku", "customer.name", "items.sku"}},
			`{"sku":"p-1","customer":{"name":"Ada"},"items":[{"sku":"a"},{"sku":"b"}]}`},
		{"rename", transform.Body{Rename: map[string]string{"qty": "quantity", "items.sku": "product_id"}},
			`{"sku":"p-1","quantity":2,"price":1,"status":"paid","customer":{"name":"Ada","email":"ada@example.com"},
			  "items":[{"product_id":"a","cost":3,"qty":1},{"product_id":"b","cost":4,"qty":2}]}`},
		{"allow then rename", transform.Body{Allow: []string{"sku", "qty"}, Rename: map[string]string{"qty": "quantity"}},
			`{"sku":"p-1","quantity":2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The same rules, both ways.
			in := compile(t, transform.Spec{Request: transform.Request{Body: tc.body}})
			r := httptest.NewRequest("POST", "/api/v1/shop", strings.NewReader(order))
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			if _, err := in.Request(r); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r.Body)
			jsonEqual(t, got, tc.want)
			if r.ContentLength != int64(len(got)) {
				t.Errorf("Content-Length %d for a body of %d bytes", r.ContentLength, len(got))
			}
			out := compile(t, transform.Spec{Response: transform.Response{Body: tc.body}})
			got, err := out.ResponseBody([]byte(order))
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tc.want)
		})
	}
}

func TestTheAllowListDropsAScalarWhereItExpectsAnObject(t *testing.T) {
	t.Parallel()
	rs := compile(t, transform.Spec{Response: transform.Response{Body: transform.Body{Allow: []string{"customer.name"}}}})
	got, err := rs.ResponseBody([]byte(`{"customer":"Ada <ada@example.com>","other":1}`))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{}`)
}

func TestNumbersPassThroughExactly(t *testing.T) {
	t.Parallel()
	rs := compile(t, transform.Spec{Response: transform.Response{Body: transform.Body{Deny: []string{"x"}}}})
	got, err := rs.ResponseBody([]byte(`{"id":12345678901234567890,"price":0.1000,"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"id":12345678901234567890,"price":0.1000}`+"\n" {
		t.Errorf("got %s", got)
	}
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	answer := `{"order":{"id":"o-1","total":42,"items":[{"sku":"a"},{"sku":"b"}]},"customer":{"name":"Ada"},"warnings":[]}`
	for _, tc := range []struct {
		name     string
		template any
		want     string
	}{
		{"values keep their type", map[string]any{"id": "{{response.order.id}}", "total": "{{response.order.total}}", "items": "{{response.order.items}}"},
			`{"id":"o-1","total":42,"items":[{"sku":"a"},{"sku":"b"}]}`},
		{"text interpolates", map[string]any{"title": "Order {{response.order.id}} for {{response.customer.name}} ({{response.order.total}})"},
			`{"title":"Order o-1 for Ada (42)"}`},
		{"arrays index", []any{"{{response.order.items.0.sku}}", "{{response.order.items.1.sku}}", "{{response.order.items.9.sku}}"},
			`["a","b",null]`},
		{"constants and nesting", map[string]any{"v": 2, "ok": true, "nested": map[string]any{"whole": "{{response}}"}},
			`{"v":2,"ok":true,"nested":{"whole":` + answer + `}}`},
		{"a missing value is null, or nothing in text", map[string]any{"x": "{{response.nope.nothing}}", "t": "[{{response.nope}}]"},
			`{"x":null,"t":"[]"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := compile(t, transform.Spec{Response: transform.Response{Template: tc.template}})
			got, err := rs.ResponseBody([]byte(answer))
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, got, tc.want)
		})
	}
	// The template sees the fields as the body rules left them.
	rs := compile(t, transform.Spec{Response: transform.Response{
		Body:     transform.Body{Rename: map[string]string{"customer.name": "display"}, Deny: []string{"order.total"}},
		Template: map[string]any{"who": "{{response.customer.display}}", "total": "{{response.order.total}}"}}})
	got, err := rs.ResponseBody([]byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, `{"who":"Ada","total":null}`)
}

func TestBodiesTheRulesCannotReadAreRefused(t *testing.T) {
	t.Parallel()
	rs := compile(t, transform.Spec{MaxBodyBytes: 64, Request: transform.Request{Body: transform.Body{Deny: []string{"role"}}}})
	for _, tc := range []struct {
		name, contentType, body string
		kind                    problem.Kind
	}{
		{"over the limit", "application/json", `{"name":"` + strings.Repeat("a", 100) + `","role":"admin"}`, problem.TooLarge},
		{"not JSON", "application/x-www-form-urlencoded", "role=admin", problem.Unsupported},
		{"no media type", "", `{"role":"admin"}`, problem.Unsupported},
		{"malformed", "application/json", `{"role":`, problem.Invalid},
		{"two values", "application/json", `{"a":1}{"role":"admin"}`, problem.Invalid},
	} {
		r := httptest.NewRequest("POST", "/api/v1/shop", strings.NewReader(tc.body))
		if tc.contentType != "" {
			r.Header.Set("Content-Type", tc.contentType)
		}
		_, err := rs.Request(r)
		if problem.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, want a %v problem", tc.name, err, tc.kind)
		}
	}
	// A body no rule needs is not read, whatever it is.
	plain := compile(t, transform.Spec{MaxBodyBytes: 8, Request: transform.Request{Headers: transform.Headers{Set: map[string]string{"X-A": "1"}}}})
	r := httptest.NewRequest("POST", "/api/v1/shop", strings.NewReader(strings.Repeat("x", 1000)))
	if _, err := plain.Request(r); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r.Body); len(b) != 1000 {
		t.Errorf("the body lost bytes: %d", len(b))
	}
	// An empty body is left empty.
	r = httptest.NewRequest("POST", "/api/v1/shop", strings.NewReader(""))
	if _, err := rs.Request(r); err != nil {
		t.Errorf("an empty body: %v", err)
	}
}

func TestCheckNamesTheKeyOfEveryBadRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		spec transform.Spec
		key  string
		msg  string
	}{
		{"identity headers", transform.Spec{Request: transform.Request{Headers: transform.Headers{Set: map[string]string{"X-User-Id": "root"}}}},
			"request.headers.set.X-User-Id", "credentials and identities"},
		{"authorization", transform.Spec{Request: transform.Request{Headers: transform.Headers{Set: map[string]string{"authorization": "Bearer x"}}}},
			"request.headers.set.authorization", "credentials"},
		{"framing", transform.Spec{Response: transform.Response{Headers: transform.Headers{Remove: []string{"Content-Length"}}}},
			"response.headers.remove.0", "frames the message"},
		{"header name", transform.Spec{Request: transform.Request{Headers: transform.Headers{Set: map[string]string{"Bad Name": "x"}}}},
			"request.headers.set.Bad Name", "not a header name"},
		{"header value", transform.Spec{Request: transform.Request{Headers: transform.Headers{Set: map[string]string{"X-A": "a\r\nX-User-Id: 1"}}}},
			"request.headers.set.X-A", "characters"},
		{"query rename", transform.Spec{Request: transform.Request{Query: transform.Query{Rename: map[string]string{"q": ""}}}},
			"request.query.rename.q", "non-empty"},
		{"rewrite outside the prefix", transform.Spec{Request: transform.Request{Rewrite: []transform.Rewrite{{Match: "/api/v2/x", To: "/x"}}}},
			"request.rewrite.0", "not under the route's prefix"},
		{"rewrite unknown capture", transform.Spec{Request: transform.Request{Rewrite: []transform.Rewrite{{Match: "/api/v1/shop/{id}", To: "/x/{sku}"}}}},
			"request.rewrite.0", "does not capture"},
		{"rewrite rest not last", transform.Spec{Request: transform.Request{Rewrite: []transform.Rewrite{{Match: "/api/v1/shop/{a...}/b", To: "/x"}}}},
			"request.rewrite.0", "comes last"},
		{"rewrite partial capture", transform.Spec{Request: transform.Request{Rewrite: []transform.Rewrite{{Match: "/api/v1/shop/p-{id}", To: "/x"}}}},
			"request.rewrite.0", "whole segment"},
		{"rewrite query", transform.Spec{Request: transform.Request{Rewrite: []transform.Rewrite{{Match: "/api/v1/shop/{id}", To: "/x?id={id}"}}}},
			"request.rewrite.0", "no query"},
		{"allow and deny", transform.Spec{Request: transform.Request{Body: transform.Body{Allow: []string{"a"}, Deny: []string{"b"}}}},
			"request.body", "not both"},
		{"empty segment", transform.Spec{Response: transform.Response{Body: transform.Body{Deny: []string{"a..b"}}}},
			"response.body.deny.0", "empty segment"},
		{"rename to a path", transform.Spec{Response: transform.Response{Body: transform.Body{Rename: map[string]string{"a": "b.c"}}}},
			"response.body.rename", "without dots"},
		{"template reading the request", transform.Spec{Response: transform.Response{Template: map[string]any{"a": []any{"ok", "{{request.x}}"}}}},
			"response.template", "{{request.x}} is not something this template can read"},
		{"template of no JSON", transform.Spec{Response: transform.Response{Template: map[string]any{"a": []any{"ok", struct{}{}}}}},
			"response.template", "a.1: a template is JSON"},
		{"negative limit", transform.Spec{MaxBodyBytes: -1}, "max_body_bytes", "negative"},
	} {
		issues := tc.spec.Check("/api/v1/shop")
		if len(issues) != 1 || issues[0].Key != tc.key || !strings.Contains(issues[0].Msg, tc.msg) {
			t.Errorf("%s: %+v, want one issue at %s saying %q", tc.name, issues, tc.key, tc.msg)
		}
		if _, err := transform.Compile(tc.spec, "/api/v1/shop"); err == nil {
			t.Errorf("%s: compiled", tc.name)
		}
	}
}
