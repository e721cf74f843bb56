package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/api/openapi"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/testkit/contract"
)

// exchange sends one request through client and decodes a JSON answer.
func exchange(t *testing.T, client *http.Client, method, url, token, body string, headers map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

// The public API through the gateway under `up`, every exchange checked against
// api/openapi/gateway.yaml (and every operation it declares exercised): sign-up to
// order summary, refusals included, the WebSocket, and the admin routes.
func TestGatewayServesThePublicAPIAsDocumented(t *testing.T) {
	s := startUp(t, fullPlatform)
	gw, _ := s.service("gateway")
	client := contract.Client(t, openapi.Files, "gateway.yaml", true)
	doc, err := contract.Load(openapi.Files, "gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	expect := func(method, path, token, body string, headers map[string]string, status int) map[string]any {
		t.Helper()
		resp, m := exchange(t, client, method, gw+path, token, body, headers)
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d %v, want %d", method, path, resp.StatusCode, m, status)
		}
		return m
	}

	expect("GET", "/api/openapi.json", "", "", nil, 200)
	expect("GET", "/.well-known/jwks.json", "", "", nil, 200)
	expect("GET", "/oidc/.well-known/openid-configuration", "", "", nil, 200)
	expect("POST", "/api/v1/auth/register", "", `{"email":"ann@example.com","password":"correct-horse-battery","name":"Ann"}`, nil, 201)
	expect("POST", "/api/v1/auth/register", "", `{"email":"ann@example.com","password":"correct-horse-battery","name":"Ann"}`, nil, 409)
	expect("POST", "/api/v1/auth/register", "", `{"email":`, nil, 400)
	expect("POST", "/api/v1/auth/login", "", `{"email":"ann@example.com","password":"wrong-horse-battery"}`, nil, 401)
	tokens := expect("POST", "/api/v1/auth/login", "", `{"email":"ann@example.com","password":"correct-horse-battery"}`, nil, 200)
	tokens = expect("POST", "/api/v1/auth/refresh", "", `{"refresh_token":"`+tokens["refresh_token"].(string)+`"}`, nil, 200)
	ann := tokens["access_token"].(string)
	expect("POST", "/api/v1/auth/logout", "", `{"refresh_token":"`+tokens["refresh_token"].(string)+`"}`, nil, 204)
	expect("POST", "/api/v1/auth/refresh", "", `{"refresh_token":"`+tokens["refresh_token"].(string)+`"}`, nil, 401)

	me := expect("GET", "/api/v1/users/me", ann, "", nil, 200)
	expect("GET", "/api/v1/users/me", "", "", nil, 401)
	expect("GET", "/api/v1/users/me", ann+"x", "", nil, 401)
	// Identity headers from the client are ignored: the token says who calls.
	if got := expect("GET", "/api/v1/users/me", ann, "", map[string]string{"X-User-Id": "someone-else"}, 200); got["id"] != me["id"] {
		t.Errorf("X-User-Id from the client changed who the caller is: %v", got["id"])
	}

	page := expect("GET", "/api/v1/products?limit=2", "", "", nil, 200)
	expect("GET", "/api/v1/products?limit=1000", "", "", nil, 400)
	product := page["items"].([]any)[0].(map[string]any)["id"].(string)
	expect("GET", "/api/v1/products/"+product, ann, "", nil, 200)
	expect("GET", "/api/v1/products/no-such-product", "", "", nil, 404)

	order := `{"items":[{"product_id":"` + product + `","quantity":1}],"payment":{"card_number":"4242424242424242"}}`
	expect("POST", "/api/v1/orders", ann, order, map[string]string{"Idempotency-Key": "v1-1"}, 201)
	placed := expect("POST", "/api/v2/orders", ann, order, map[string]string{"Idempotency-Key": "v2-1"}, 201)
	id := placed["id"].(string)
	expect("POST", "/api/v2/orders", ann, `{"items": [`, map[string]string{"Idempotency-Key": "v2-2"}, 400)
	// A key named twice is refused, naming it: one layer must not read the first
	// items and another the last.
	twice := `{"items":[],"items":[{"product_id":"` + product + `","quantity":1}],"payment":{"card_number":"4242424242424242"}}`
	if m := expect("POST", "/api/v2/orders", ann, twice, map[string]string{"Idempotency-Key": "v2-twice"}, 400); !strings.Contains(fmt.Sprint(m["errors"]), "items") {
		t.Errorf("a duplicate key refused without naming it: %v", m)
	}
	// The Idempotency-Key's edges, each judged by the document: what it allows is
	// placed, what it refuses is a 400 naming the header.
	edges, err := contract.Edges(doc, "Idempotency-Key", "edge-")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edges {
		headers := map[string]string{}
		if e.Present {
			headers["Idempotency-Key"] = e.Value
		}
		resp, m := exchange(t, client, "POST", gw+"/api/v2/orders", ann, order, headers)
		switch {
		case e.Valid && resp.StatusCode != 201:
			t.Errorf("Idempotency-Key %s: the document allows it, the service answers %d %v", e.Name, resp.StatusCode, m)
		case !e.Valid && (resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(m["errors"]), "Idempotency-Key")):
			t.Errorf("Idempotency-Key %s: the document refuses it, the service answers %d %v", e.Name, resp.StatusCode, m)
		}
	}
	expect("POST", "/api/v2/orders", ann, `{"items":[],"payment":{"card_number":"4242424242424242"}}`, map[string]string{"Idempotency-Key": "v2-3"}, 400)
	expect("POST", "/api/v2/orders", ann, `{"pad":"`+strings.Repeat("x", 70_000)+`"}`, map[string]string{"Idempotency-Key": "v2-4"}, 413)
	expect("POST", "/api/v2/orders", "", order, map[string]string{"Idempotency-Key": "v2-5"}, 401)
	final := expect("GET", "/api/v2/orders/"+id, ann, "", map[string]string{"Prefer": "wait=5"}, 200)
	if final["status"] == "PENDING" {
		final = expect("GET", "/api/v2/orders/"+id, ann, "", map[string]string{"Prefer": "wait=5"}, 200)
	}
	if final["status"] != "CONFIRMED" {
		t.Fatalf("order through the gateway: %v", final)
	}
	expect("GET", "/api/v1/orders/"+id, ann, "", nil, 200)
	expect("GET", "/api/v1/orders/no-such-order", ann, "", nil, 404)
	expect("GET", "/api/v1/orders?limit=5", ann, "", nil, 200)
	expect("GET", "/api/v2/orders?limit=5", ann, "", nil, 200)

	summary := expect("GET", "/api/v1/orders/"+id+"/summary", ann, "", nil, 200)
	if p, _ := summary["payment"].(map[string]any); p["status"] != "CAPTURED" {
		t.Errorf("summary payment: %v", summary["payment"])
	}
	items, _ := summary["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["product"] == nil {
		t.Errorf("summary items: %v", summary["items"])
	}
	if w, _ := summary["warnings"].([]any); len(w) != 0 {
		t.Errorf("summary warnings with every service up: %v", w)
	}
	expect("GET", "/api/v1/orders/no-such-order/summary", ann, "", nil, 404)
	// Someone else's order is not found, and nothing of it (its payment) leaks.
	expect("POST", "/api/v1/auth/register", "", `{"email":"bob@example.com","password":"correct-horse-battery","name":"Bob"}`, nil, 201)
	bob := expect("POST", "/api/v1/auth/login", "", `{"email":"bob@example.com","password":"correct-horse-battery"}`, nil, 200)["access_token"].(string)
	if m := expect("GET", "/api/v1/orders/"+id+"/summary", bob, "", nil, 404); m["payment"] != nil {
		t.Errorf("another customer's summary leaked: %v", m)
	}

	notes := expect("GET", "/api/v1/notifications?order_id="+id, ann, "", nil, 200)
	if n, _ := notes["items"].([]any); len(n) == 0 {
		t.Errorf("no notifications about the order: %v", notes)
	}
	// The WebSocket, through the gateway, with the token in the query as browsers send it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(gw, "http", "ws", 1)+"/api/v1/notifications?access_token="+ann, nil)
	if err != nil {
		t.Fatalf("WebSocket through the gateway: %v", err)
	}
	_, first, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(first), `"orders.order.placed.v1"`) {
		t.Errorf("first notification over the WebSocket: %s %v", first, err)
	}
	_ = ws.CloseNow()

	// Administrators only: a customer is refused; an operator grants the role, and
	// with a fresh token the dead-letter routes answer.
	expect("GET", "/api/v1/admin/dead-letters", ann, "", nil, 403)
	expect("GET", "/api/v1/admin/sagas", ann, "", nil, 403)
	if out, err := execIn(s.dir, "grant", "ann@example.com", "admin").CombinedOutput(); err != nil {
		t.Fatalf("switchyard grant: %v\n%s", err, out)
	}
	admin := expect("POST", "/api/v1/auth/login", "", `{"email":"ann@example.com","password":"correct-horse-battery"}`, nil, 200)["access_token"].(string)
	expect("GET", "/api/v1/admin/dead-letters?limit=10", admin, "", nil, 200)
	expect("GET", "/api/v1/admin/dead-letters?limit=0", admin, "", nil, 400)
	expect("GET", "/api/v1/admin/dead-letters/no-such-letter", admin, "", nil, 404)
	expect("POST", "/api/v1/admin/dead-letters/no-such-letter/replay", admin, "", nil, 404)
	if sagas := expect("GET", "/api/v1/admin/sagas?state=all", admin, "", nil, 200)["sagas"].([]any); len(sagas) == 0 {
		t.Error("no saga listed after an order was placed")
	}
	expect("GET", "/api/v1/admin/sagas?state=stuck", admin, "", nil, 400)

	// A route the gateway does not have (so, not in the document either).
	if code, m := call(t, "GET", gw+"/api/v3/orders", ann, ""); code != 404 || m["type"] != "urn:switchyard:problem:not-found" {
		t.Errorf("unknown route: %d %v", code, m)
	}

	// Sign-in is limited per client address (5/s, bursts of 20): hammering it is
	// refused with 429, Retry-After and the RateLimit headers.
	limited := false
	for range 40 {
		resp, _ := exchange(t, client, "POST", gw+"/api/v1/auth/login", "", `{"email":"x@example.com","password":"guess-guess-guess"}`, nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = resp.Header.Get("Retry-After") != "" && resp.Header.Get("RateLimit-Remaining") == "0"
			break
		}
	}
	if !limited {
		t.Error("40 sign-ins in a row were never limited with Retry-After and RateLimit-Remaining: 0")
	}

	// Every route the gateway serves is in the document.
	cfg, err := config.Load("switchyard.yaml", []byte(fullPlatform), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Gateway.Routes {
		found := false
		for path := range doc.Paths.Map() {
			if path == r.Prefix || strings.HasPrefix(path, r.Prefix+"/") {
				found = true
			}
		}
		if !found {
			t.Errorf("route %s is served but not in api/openapi/gateway.yaml", r.Prefix)
		}
	}
}

// A route to a fixed upstream URL — a legacy system being strangled route by route —
// goes through the same gateway, with the caller's identity checked first.
func TestAGatewayRouteCanLeadToAFixedUpstream(t *testing.T) {
	var seen atomic.Value
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.URL.Path + " as " + r.Header.Get("X-User-Id"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"system":"legacy"}`)
	}))
	defer legacy.Close()
	platform := fullPlatform + `
    - prefix: /api/v1/invoices
      path: /old/invoices
      upstream: ` + legacy.URL + `
      auth: required
`
	s := startUp(t, platform)
	gw, _ := s.service("gateway")
	if code, _ := call(t, "GET", gw+"/api/v1/invoices/7", "", ""); code != 401 {
		t.Fatalf("anonymous call to the legacy route: %d, want 401", code)
	}
	if seen.Load() != nil {
		t.Fatal("an anonymous call reached the legacy system")
	}
	token := s.customer("ann@example.com")
	code, body := call(t, "GET", gw+"/api/v1/invoices/7", token, "")
	if code != 200 || body["system"] != "legacy" {
		t.Fatalf("legacy route: %d %v", code, body)
	}
	if got, _ := seen.Load().(string); !strings.HasPrefix(got, "/old/invoices/7 as ") || strings.HasSuffix(got, " as ") {
		t.Errorf("the legacy system saw %q, want /old/invoices/7 with the verified user id", got)
	}
}
