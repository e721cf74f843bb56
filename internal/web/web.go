// Package web holds the two browser applications, embedded in the binary so that
// `go run` serves them with no Node toolchain and no CDN: the operators' dashboard
// (at /ui/, on every platform's gateway) — live topology with rates, errors,
// breaker states and stale views, traces drawn as sequence diagrams with their log
// lines, dead letters with replay, and sagas in flight — and the reference shop's
// storefront (at /) — sign up, sign in with the authorization code flow and PKCE
// on the shop's OpenID Connect provider (static/oauth.js), browse, order, and
// watch the order's status arrive over the WebSocket.
//
// Both are plain HTML, CSS and JavaScript modules: there is nothing to build. They
// talk only to the gateway's public API (and, for the dashboard, to the trace hub
// behind the gateway's admin-only /ui/api/ route).
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/problem"
)

//go:embed assets
var assets embed.FS

// contentSecurityPolicy lets the pages load only their own scripts, styles and
// images, and talk only to their own origin (WebSocket included).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Dashboard maps ServeMux patterns to the handlers serving the operators'
// dashboard, which the gateway of every platform serves:
//
//	GET /ui/{$}    the dashboard
//	GET /static/   the scripts and styles of both applications
func Dashboard() map[string]http.Handler {
	static, _ := fs.Sub(assets, "assets/static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	pw := problem.Writer{}
	return map[string]http.Handler{
		"GET /ui/{$}": page("ui.html"),
		"GET /static/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := strings.TrimPrefix(r.URL.Path, "/static/")
			if f, err := fs.Stat(static, name); err != nil || f.IsDir() {
				pw.Write(w, r, problem.New(problem.NotFound, "no file %s", r.URL.Path))
				return
			}
			w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		}),
	}
}

// Storefront maps the shop's storefront page, GET /{$}; the reference shop's
// gateway serves it beside the dashboard.
func Storefront() map[string]http.Handler {
	return map[string]http.Handler{"GET /{$}": page("index.html")}
}

func page(name string) http.Handler {
	body, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("web: missing embedded page " + name) //nolint:forbidigo // the embed directive guarantees it; a build without it is broken
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
}
