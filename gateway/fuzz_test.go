package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
)

// The gateway, sent any Authorization, Cache-Control, If-None-Match, Origin and
// X-Forwarded-For, never panics, never answers 500, and lets through to the
// service only the one principal whose token was signed — whatever the headers
// around it say.
func FuzzGatewayHeaders(f *testing.F) {
	is := newIssuer(f)
	be := newBackend(f, "orders")
	up := upstream(f, "orders", discovery.Instance{Addr: be.addr()})
	g := newGateway(f, gateway.Config{
		Routes: []gateway.Route{
			{Prefix: "/api/v1/orders", Auth: gateway.AuthRequired, Upstream: up},
			{Prefix: "/api/v1/admin", Auth: gateway.AuthAdmin, Upstream: up},
		},
		Verifier: is.verifier(f),
		CORS:     gateway.CORS{AllowedOrigins: []string{"https://shop.example"}},
	})
	good := is.token(f, is.claims("ann", "customer"))
	for _, seed := range [][5]string{
		{"Bearer " + good, "no-cache", `"abc"`, "https://shop.example", "10.0.0.1"},
		{"Bearer " + good + "x", "max-age=0", "*", "https://evil.example", "1.2.3.4, 5.6.7.8"},
		{"Bearer " + strings.Replace(good, ".", "..", 1), "no-store, max-age=\"9\"", `W/"x", "y"`, "null", ""},
		{"Basic YW5uOnB3", "", "", "", "::1"},
		{"Bearer", "=,=,", ",,,", " ", "x, , y"},
		{"bearer " + good, "private=\"a,b\"", "W/", "https://shop.example:443", "300.1.1.1"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4])
	}
	// The signed token does get through: the target would show nothing otherwise.
	r := httptest.NewRequest(http.MethodGet, "/api/v1/orders/o-1", nil)
	r.Header.Set("Authorization", "Bearer "+good)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"X-User-Id":"ann"`) {
		f.Fatalf("the signed token: %d %s", w.Code, w.Body)
	}
	f.Fuzz(func(t *testing.T, authorization, cacheControl, ifNoneMatch, origin, forwardedFor string) {
		for _, path := range []string{"/api/v1/orders/o-1", "/api/v1/admin/sagas"} {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			for k, v := range map[string]string{"Authorization": authorization, "Cache-Control": cacheControl,
				"If-None-Match": ifNoneMatch, "Origin": origin, "X-Forwarded-For": forwardedFor} {
				if v != "" {
					r.Header[k] = []string{v}
				}
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, r)
			if w.Code >= 500 && w.Code != http.StatusBadGateway && w.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s: %d %s", path, w.Code, w.Body)
			}
			if w.Code != http.StatusOK {
				continue
			}
			var echo struct {
				Headers map[string]string `json:"headers"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &echo); err != nil {
				t.Fatalf("%s: 200 without the service's answer: %s", path, w.Body)
			}
			if path == "/api/v1/admin/sagas" || echo.Headers["X-User-Id"] != "ann" {
				t.Fatalf("%s reached the service as %q with Authorization %q", path, echo.Headers["X-User-Id"], authorization)
			}
		}
	})
}
