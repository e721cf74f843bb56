package gateway

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CORS lets browser code from other origins call the API (Fetch standard).
type CORS struct {
	// AllowedOrigins, exactly as browsers send them (https://shop.example); "*" allows
	// any origin but never with credentials.
	AllowedOrigins []string
	// AllowedMethods [GET, POST, PUT, PATCH, DELETE].
	AllowedMethods []string
	// AllowedHeaders a preflight may ask for [Authorization, Content-Type,
	// Idempotency-Key, X-Request-Id, X-Correlation-Id, Prefer].
	AllowedHeaders []string
	// ExposedHeaders scripts may read [Retry-After, RateLimit-*, Location,
	// Deprecation, Sunset, Link, X-Request-Id].
	ExposedHeaders []string
	// MaxAge a preflight's answer may be cached [10m].
	MaxAge time.Duration
}

func (c *CORS) enabled() bool { return len(c.AllowedOrigins) > 0 }

func (c *CORS) allows(origin string) bool {
	return slices.Contains(c.AllowedOrigins, origin) || slices.Contains(c.AllowedOrigins, "*")
}

// handle marks the response for an allowed origin and answers preflights; it reports
// whether the request has been answered.
func (c *CORS) handle(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	h.Add("Vary", "Origin")
	if origin == "" || !c.allows(origin) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", strings.Join(or(c.AllowedMethods, []string{"GET", "POST", "PUT", "PATCH", "DELETE"}), ", "))
		h.Set("Access-Control-Allow-Headers", strings.Join(or(c.AllowedHeaders,
			[]string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "X-Correlation-Id", "Prefer"}), ", "))
		maxAge := c.MaxAge
		if maxAge <= 0 {
			maxAge = 10 * time.Minute
		}
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(maxAge/time.Second)))
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h.Set("Access-Control-Expose-Headers", strings.Join(or(c.ExposedHeaders,
		[]string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy",
			"Location", "Deprecation", "Sunset", "Link", "X-Request-Id"}), ", "))
	return false
}

func or(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}
