package gateway_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/gateway/transform"
)

// accounts stands for a service that takes whatever fields it is sent: it
// answers with the account it would store.
func accounts(t *testing.T) string {
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		switch r.URL.Path {
		case "/v1/accounts":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Server", "accounts/1.0")
			account := map[string]any{"id": "a-1", "email": "ada@example.com", "role": "customer", "password_hash": "x"}
			for k, v := range in {
				account[k] = v
			}
			_ = json.NewEncoder(w).Encode(account)
		case "/v1/big":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"pad":"`+strings.Repeat("x", 4096)+`"}`)
		case "/v1/gzip":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			z := gzip.NewWriter(w)
			_, _ = io.WriteString(z, `{"email":"ada@example.com"}`)
			_ = z.Close()
		case "/v1/missing":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"title":"Not found","status":404,"email":"kept: errors pass as they are"}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.EscapedPath(), "query": r.URL.RawQuery, "x_client": r.Header.Get("X-Client")})
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func transformed(t *testing.T, spec *transform.Spec) string {
	t.Helper()
	addr := accounts(t)
	route := gateway.Route{Prefix: "/api/v1/accounts", Path: "/v1/accounts", Auth: gateway.AuthNone,
		Upstream: upstream(t, "accounts", discovery.Instance{Addr: addr})}
	if spec != nil {
		own := *spec
		own.Request.Rewrite = nil // the rewrites are the other route's
		rules, err := transform.Compile(own, route.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		route.Transform = rules
	}
	other := gateway.Route{Prefix: "/api/v1/other", Path: "/v1", Auth: gateway.AuthNone,
		Upstream: upstream(t, "accounts", discovery.Instance{Addr: addr})}
	if spec != nil {
		rules, err := transform.Compile(*spec, other.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		other.Transform = rules
	}
	return serve(t, newGateway(t, gateway.Config{Routes: []gateway.Route{route, other}}), nil)
}

func post(t *testing.T, url, contentType, body string) (*http.Response, map[string]any) {
	t.Helper()
	return postBody(t, url, contentType, strings.NewReader(body))
}

func postBody(t *testing.T, url, contentType string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, raw, err)
	}
	return resp, out
}

func TestABodyDenyListKeepsAClientFromSettingAField(t *testing.T) {
	t.Parallel()
	const signUp = `{"email":"eve@example.com","role":"admin"}`
	// Without a rule the service takes the role it is sent.
	_, account := post(t, transformed(t, nil)+"/api/v1/accounts", "application/json", signUp)
	if account["role"] != "admin" {
		t.Fatalf("the service did not take the field, so the test shows nothing: %v", account)
	}
	url := transformed(t, &transform.Spec{Request: transform.Request{Body: transform.Body{Deny: []string{"role"}}}}) + "/api/v1/accounts"
	resp, account := post(t, url, "application/json", signUp)
	if resp.StatusCode != http.StatusOK || account["role"] != "customer" || account["email"] != "eve@example.com" {
		t.Errorf("%d %v: the role must be the service's own, the email the client's", resp.StatusCode, account)
	}
	// Nor by another spelling of the same body: a duplicate key, a form, a body over the limit.
	for _, tc := range []struct {
		contentType, body string
		status            int
	}{
		{"application/json", `{"email":"eve@example.com","role":"admin","role":"admin"}`, http.StatusBadRequest},
		{"application/json", `{"email":"eve@example.com","\u0072ole":"admin","role":"x"}`, http.StatusBadRequest},
		{"application/x-www-form-urlencoded", "role=admin", http.StatusUnsupportedMediaType},
		{"text/plain", signUp, http.StatusUnsupportedMediaType},
		{"application/json", `{"role":"admin","pad":"` + strings.Repeat("x", 2<<20) + `"}`, http.StatusRequestEntityTooLarge},
		{"chunked", `{"role":"admin","pad":"` + strings.Repeat("x", 2<<20) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		var body io.Reader = strings.NewReader(tc.body)
		if tc.contentType == "chunked" {
			tc.contentType, body = "application/json", io.MultiReader(body) // no length known: sent chunked
		}
		resp, account := postBody(t, url, tc.contentType, body)
		if resp.StatusCode != tc.status || account["role"] == "admin" {
			t.Errorf("%s %.40s: %d %v, want %d and no admin", tc.contentType, tc.body, resp.StatusCode, account, tc.status)
		}
		if tc.status != http.StatusOK && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: a refusal as %s", tc.contentType, resp.Header.Get("Content-Type"))
		}
	}
}

func TestRoutesTransformWhatPassesThroughThem(t *testing.T) {
	t.Parallel()
	base := transformed(t, &transform.Spec{
		MaxBodyBytes: 1024,
		Request: transform.Request{
			Headers: transform.Headers{Set: map[string]string{"X-Client": "web"}},
			Query:   transform.Query{Rename: map[string]string{"q": "search"}, Drop: []string{"debug"}},
			Rewrite: []transform.Rewrite{{Match: "/api/v1/other/products/{id}/stock", To: "/v1/inventory/{id}"}},
		},
		Response: transform.Response{
			Headers: transform.Headers{Remove: []string{"Server"}},
			Body:    transform.Body{Deny: []string{"password_hash"}, Rename: map[string]string{"email": "contact"}},
		},
	})

	// The request: path rewritten from its captures, query and headers as declared.
	resp, got := get(t, base+"/api/v1/other/products/p%2F1/stock?q=shoes&debug=1", nil)
	var seen map[string]any
	if err := json.Unmarshal(got, &seen); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if seen["path"] != "/v1/inventory/p%2F1" || seen["query"] != "search=shoes" || seen["x_client"] != "web" {
		t.Errorf("upstream saw %v", seen)
	}
	// Other paths keep the prefix rule.
	_, got = get(t, base+"/api/v1/other/elsewhere", nil)
	if !strings.Contains(string(got), `"path":"/v1/elsewhere"`) {
		t.Errorf("unmatched path: %s", got)
	}

	// The answer: fields denied and renamed, headers removed, the ETag of the
	// upstream's body gone with it.
	resp, account := post(t, base+"/api/v1/accounts", "application/json", `{}`)
	if _, ok := account["password_hash"]; ok || account["contact"] != "ada@example.com" || account["email"] != nil {
		t.Errorf("answer %v", account)
	}
	if resp.Header.Get("Server") != "" || resp.Header.Get("ETag") != "" {
		t.Errorf("headers %v", resp.Header)
	}
	if resp.ContentLength <= 0 {
		t.Errorf("Content-Length %d", resp.ContentLength)
	}

	// Errors pass as they are.
	resp, got = get(t, base+"/api/v1/other/missing", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(got), "kept") {
		t.Errorf("%d %s", resp.StatusCode, got)
	}
	// An answer over the limit, or encoded, is refused, never passed on untransformed.
	for _, path := range []string{"/api/v1/other/big", "/api/v1/other/gzip"} {
		resp, got = get(t, base+path, map[string]string{"Accept-Encoding": "gzip"})
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/problem+json" || strings.Contains(string(got), "ada@") {
			t.Errorf("%s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), got)
		}
	}
}

func TestAggregatedAnswersTakeTheirTemplate(t *testing.T) {
	t.Parallel()
	rules, err := transform.Compile(transform.Spec{Response: transform.Response{Template: map[string]any{
		"order":   "{{response.order.id}}",
		"summary": "{{response.order.items.0.qty}} × {{response.order.items.0.sku}}",
		"stock":   "{{response.stock}}",
	}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	summary := gateway.Route{Pattern: "GET /api/v1/summary/{id}", Auth: gateway.AuthNone, Transform: rules,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.PathValue("id")
			parts, _ := gateway.Gather(r.Context(),
				gateway.Part{Name: "order", Fetch: func(context.Context) (any, error) {
					return map[string]any{"id": id, "items": []any{map[string]any{"sku": "p-1", "qty": 2}}}, nil
				}},
				gateway.Part{Name: "stock", Fetch: func(context.Context) (any, error) { return 7, nil }})
			gateway.WriteJSON(w, http.StatusOK, parts)
		})}
	base := serve(t, newGateway(t, gateway.Config{Routes: []gateway.Route{summary}}), nil)
	resp, got := get(t, base+"/api/v1/summary/o-9", nil)
	var answer map[string]any
	if err := json.Unmarshal(got, &answer); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if answer["order"] != "o-9" || answer["summary"] != "2 × p-1" || answer["stock"] != float64(7) || len(answer) != 3 {
		t.Errorf("answer %v", answer)
	}
}
