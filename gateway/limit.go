package gateway

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/switchyard/switchyard/problem"
)

// Limit is a rate limit: Rate requests per Per, with bursts of up to Burst.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
	// FailOpen decides what happens when a shared limiter cannot be reached: true
	// falls back to this replica's own limit, false refuses with 503. Routes that
	// guard against guessing (sign-in) fail closed; the rest fail open.
	FailOpen bool
}

func (l Limit) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Rate
}

func (l Limit) per() time.Duration {
	if l.Per > 0 {
		return l.Per
	}
	return time.Second
}

// Decision is a limiter's answer.
type Decision struct {
	Allowed bool
	// Remaining requests that would be allowed now.
	Remaining int
	// RetryAfter, when refused, is when one more request would be allowed.
	RetryAfter time.Duration
	// ResetAfter is when the allowance would be whole again.
	ResetAfter time.Duration
}

// Limiter applies limits by key.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
}

// Local is an in-process token bucket per key (golang.org/x/time/rate). Buckets
// untouched for longer than it takes them to fill are forgotten, so the number of
// keys stays bounded by the number of recently active principals.
type Local struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
	now     func() time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
	full time.Duration
}

// NewLocal returns an empty in-process limiter.
func NewLocal() *Local { return &Local{buckets: map[string]*bucket{}, now: time.Now} }

// Allow implements Limiter.
func (l *Local) Allow(_ context.Context, key string, lim Limit) (Decision, error) {
	now := l.now()
	every := lim.per() / time.Duration(lim.Rate)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Every(every), lim.burst()), full: every * time.Duration(lim.burst())}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		return Decision{RetryAfter: d, ResetAfter: b.full}, nil
	}
	tokens := b.lim.TokensAt(now)
	return Decision{Allowed: true, Remaining: int(math.Max(0, math.Floor(tokens))),
		ResetAfter: time.Duration((float64(lim.burst()) - tokens) * float64(every))}, nil
}

func (l *Local) sweep(now time.Time) {
	l.swept = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) > b.full+time.Minute {
			delete(l.buckets, k)
		}
	}
}

// Shared is GCRA on Redis (go-redis/redis_rate), so that every replica of the
// gateway draws on one allowance per key. When Redis cannot answer, a limit with
// FailOpen is applied by this replica alone (Fallback) and one without is refused.
//
// After a failure Redis is left alone for a second (each request would otherwise wait
// for its own timeout), and the routes decide as if it were down.
type Shared struct {
	limiter   *redis_rate.Limiter
	fallback  *Local
	downUntil atomic.Int64 // unix nanoseconds
	without   *prometheus.CounterVec
}

// NewShared returns a limiter keeping its state in rdb.
func NewShared(rdb redis.UniversalClient) *Shared {
	return &Shared{limiter: redis_rate.NewLimiter(rdb), fallback: NewLocal(),
		without: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rate_limit_without_redis_total",
			Help: "Rate-limit decisions made while Redis could not answer: by this replica alone (open) or refused (closed).",
		}, []string{"on_redis_error"})}
}

// Register adds the limiter's counter of decisions made without Redis to reg.
func (s *Shared) Register(reg prometheus.Registerer) error { return reg.Register(s.without) }

var errRedisResting = errors.New("gateway: Redis failed within the last second")

// ErrLimiterDown is returned when the shared limiter cannot be reached and the
// limit fails closed.
var ErrLimiterDown = &problem.Error{Kind: problem.Unavailable, Detail: "the rate limiter is unavailable; try again shortly", RetryAfter: time.Second}

// Allow implements Limiter.
func (s *Shared) Allow(ctx context.Context, key string, lim Limit) (Decision, error) {
	var res *redis_rate.Result
	err := errRedisResting
	if time.Now().UnixNano() >= s.downUntil.Load() {
		rctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		res, err = s.limiter.Allow(rctx, "switchyard:ratelimit:"+key, redis_rate.Limit{Rate: lim.Rate, Burst: lim.burst(), Period: lim.per()})
		cancel()
		if err != nil {
			s.downUntil.Store(time.Now().Add(time.Second).UnixNano())
		}
	}
	if err != nil {
		if lim.FailOpen {
			s.without.WithLabelValues("open").Inc()
			return s.fallback.Allow(ctx, key, lim)
		}
		s.without.WithLabelValues("closed").Inc()
		return Decision{}, ErrLimiterDown
	}
	d := Decision{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !d.Allowed {
		d.RetryAfter = res.RetryAfter
	}
	return d, nil
}

// limit applies rt's rate limit to key, writing the RateLimit headers (IETF
// draft-ietf-httpapi-ratelimit-headers) and, when refused, the 429 answer.
func (g *Gateway) limit(w http.ResponseWriter, r *http.Request, rt *route, key string) bool {
	d, err := g.cfg.Limiter.Allow(r.Context(), rt.Prefix+rt.Pattern+"|"+key, rt.RateLimit)
	if err != nil {
		g.reject(w, r, "limiter_down", err, 0)
		return false
	}
	h := w.Header()
	h["Ratelimit-Limit"] = []string{strconv.Itoa(rt.RateLimit.burst())}
	h["Ratelimit-Remaining"] = []string{strconv.Itoa(d.Remaining)}
	h["Ratelimit-Reset"] = []string{strconv.Itoa(ceilSeconds(d.ResetAfter))}
	h["Ratelimit-Policy"] = []string{strconv.Itoa(rt.RateLimit.Rate) + ";w=" + strconv.Itoa(ceilSeconds(rt.RateLimit.per())) + ";burst=" + strconv.Itoa(rt.RateLimit.burst())}
	if d.Allowed {
		return true
	}
	g.reject(w, r, "rate_limited", &problem.Error{Kind: problem.RateLimited,
		Detail: "too many requests on this route; see Retry-After", RetryAfter: max(d.RetryAfter, time.Millisecond)}, 0)
	return false
}

func ceilSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
