package gateway

import (
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
)

// Shedding configures the adaptive concurrency limit in front of every route. The
// limit (failsafe-go's adaptive limiter, after Netflix's concurrency-limits) rises
// while latency stays near its recent baseline and falls when latency climbs with
// concurrency, so excess requests are answered 503 + Retry-After at once instead of
// queueing until everyone's latency collapses.
type Shedding struct {
	// MinLimit, MaxLimit and InitialLimit bound the concurrency limit; MaxLimit 0
	// disables shedding.
	MinLimit, MaxLimit, InitialLimit uint
}

type shedder struct {
	limiter adaptivelimiter.AdaptiveLimiter[any]
}

func newShedder(cfg Shedding, m *metrics) *shedder {
	if cfg.MinLimit == 0 {
		cfg.MinLimit = 8
	}
	if cfg.InitialLimit == 0 {
		cfg.InitialLimit = max(cfg.MinLimit, cfg.MaxLimit/4)
	}
	l := adaptivelimiter.NewBuilder[any]().
		WithLimits(cfg.MinLimit, cfg.MaxLimit, cfg.InitialLimit).
		WithRecentWindow(250*time.Millisecond, 5*time.Second, 50).
		OnLimitChanged(func(e adaptivelimiter.LimitChangedEvent) { m.limit.Set(float64(e.NewLimit)) }).
		Build()
	m.limit.Set(float64(cfg.InitialLimit))
	return &shedder{limiter: l}
}

func (s *shedder) acquire() (adaptivelimiter.Permit, bool) { return s.limiter.TryAcquirePermit() }

// release records the request's latency, unless it failed on the gateway's side of
// things (a 5xx says nothing about how long a healthy answer takes).
func (s *shedder) release(p adaptivelimiter.Permit, w *statusWriter) {
	if w.code >= 500 {
		p.Drop()
		return
	}
	p.Record()
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }
