package web_test

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/web"
)

// The pages and their files are served with a strict Content-Security-Policy; an
// unknown file is a problem document; every script a page names exists.
func TestThePagesAndTheirFiles(t *testing.T) {
	mux := http.NewServeMux()
	for pattern, h := range merged(web.Dashboard(), web.Storefront()) {
		mux.Handle(pattern, h)
	}
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	for _, page := range []string{"/", "/ui/"} {
		w := get(page)
		if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("GET %s: %d %v", page, w.Code, w.Header())
		}
		for _, ref := range []string{"/static/style.css", "/static/shop.js", "/static/ui.js"} {
			if strings.Contains(w.Body.String(), ref) {
				if r := get(ref); r.Code != 200 {
					t.Errorf("%s names %s, which answers %d", page, ref, r.Code)
				}
			}
		}
	}
	for _, module := range []string{"/static/api.js", "/static/oauth.js"} {
		if r := get(module); r.Code != 200 || !strings.Contains(r.Header().Get("Content-Type"), "javascript") {
			t.Errorf("%s: %d %s", module, r.Code, r.Header().Get("Content-Type"))
		}
	}
	for _, path := range []string{"/static/nope.js", "/static/", "/static/missing/dir.css"} {
		if r := get(path); r.Code != 404 || r.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: %d %s, want a 404 problem", path, r.Code, r.Header().Get("Content-Type"))
		}
	}
}

func merged(ms ...map[string]http.Handler) map[string]http.Handler {
	out := map[string]http.Handler{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}
