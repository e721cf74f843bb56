// Package balancer picks the instance each call goes to, on the client side.
//
// Policies:
//
//   - P2C (the default): power of two choices — draw two healthy instances at random
//     and take the one with the lower load score, (in-flight calls + 1) × latency
//     EWMA. It avoids herding onto one instance and follows slow ones away.
//   - RoundRobin: each healthy instance in turn.
//   - Weighted: at random in proportion to each instance's weight (a canary at
//     weight 10 beside one at 90 gets a tenth); PickFor makes the choice sticky per
//     key (a user id) with weighted rendezvous hashing.
//
// Passive health: an instance that refuses a connection, or fails EjectAfter calls
// in a row (connection errors or 5xx, as the caller reports them), is ejected for EjectBase × the number of
// times it has been ejected, capped at EjectMax; it returns by itself when the
// interval ends. Never more than MaxEjectedPercent of the instances (half, by default)
// are ejected at once, so a bad deploy of one version cannot empty the pool.
//
// Balancers are safe for concurrent use; Pick takes no lock on the hot path.
package balancer

import (
	"errors"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/discovery"
)

// Policy names a balancing policy.
type Policy string

// The policies.
const (
	P2C        Policy = "p2c"
	RoundRobin Policy = "round-robin"
	Weighted   Policy = "weighted"
)

// Config configures a Balancer. Zero fields take the default in brackets.
type Config struct {
	// Policy is the balancing policy [P2C].
	Policy Policy
	// EjectAfter consecutive failures eject an instance [5].
	EjectAfter int
	// EjectBase is the first ejection's length [30s].
	EjectBase time.Duration
	// EjectMax caps an ejection's length [5m].
	EjectMax time.Duration
	// MaxEjectedPercent of the instances may be ejected at once [50].
	MaxEjectedPercent int
	// Decay is the latency EWMA's time constant [10s].
	Decay time.Duration
	// OnEject is called when an instance is ejected (for metrics and logs).
	OnEject func(inst discovery.Instance, until time.Time)
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// ErrNoInstances means the service has no instance to call.
var ErrNoInstances = errors.New("no instances")

// Balancer picks instances of one service.
type Balancer struct {
	cfg  Config
	set  atomic.Pointer[[]*Endpoint]
	rr   atomic.Uint64
	mu   sync.Mutex // serialises Update and ejection decisions
	byID map[string]*Endpoint
}

// Endpoint is an instance with the statistics the balancer keeps about it. Stats
// survive updates of the instance set for as long as the instance stays in it.
type Endpoint struct {
	Instance discovery.Instance

	inflight     atomic.Int64
	ewmaNanos    atomic.Uint64 // float64 bits of the latency EWMA in nanoseconds
	lastSample   atomic.Int64  // unix nanos of the last EWMA update
	failures     atomic.Int32  // consecutive
	ejectedUntil atomic.Int64  // unix nanos; 0 when not ejected
	timesEjected atomic.Int32
	lastEjected  atomic.Int64
}

// InFlight is the number of calls to e under way.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Latency is e's latency EWMA.
func (e *Endpoint) Latency() time.Duration {
	return time.Duration(math.Float64frombits(e.ewmaNanos.Load()))
}

// New returns an empty balancer; feed it with Update.
func New(cfg Config) *Balancer {
	if cfg.Policy == "" {
		cfg.Policy = P2C
	}
	if cfg.EjectAfter <= 0 {
		cfg.EjectAfter = 5
	}
	if cfg.EjectBase <= 0 {
		cfg.EjectBase = 30 * time.Second
	}
	if cfg.EjectMax <= 0 {
		cfg.EjectMax = 5 * time.Minute
	}
	if cfg.MaxEjectedPercent <= 0 {
		cfg.MaxEjectedPercent = 50
	}
	if cfg.Decay <= 0 {
		cfg.Decay = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Balancer{cfg: cfg, byID: map[string]*Endpoint{}}
	empty := []*Endpoint{}
	b.set.Store(&empty)
	return b
}

// Update replaces the instance set, keeping the statistics of instances that stay.
func (b *Balancer) Update(instances []discovery.Instance) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := make([]*Endpoint, 0, len(instances))
	byID := make(map[string]*Endpoint, len(instances))
	for _, inst := range instances {
		e, ok := b.byID[inst.ID]
		if !ok || e.Instance != inst {
			e = &Endpoint{Instance: inst}
		}
		byID[inst.ID] = e
		next = append(next, e)
	}
	b.byID = byID
	b.set.Store(&next)
}

// Endpoints returns the current set.
func (b *Balancer) Endpoints() []*Endpoint { return *b.set.Load() }

func (b *Balancer) healthy(e *Endpoint, now int64) bool {
	until := e.ejectedUntil.Load()
	return until == 0 || now >= until
}

// clock reads the time once, when a pick first needs it: only an instance that was
// ejected needs the time to tell whether it is back, so a pick among instances that
// never were reads no clock.
type clock struct {
	now   func() time.Time
	nanos int64
}

func (c *clock) read() int64 {
	if c.nanos == 0 {
		c.nanos = c.now().UnixNano()
	}
	return c.nanos
}

// up is healthy with the time read from c only if e's health depends on it.
func (b *Balancer) up(e *Endpoint, c *clock) bool {
	until := e.ejectedUntil.Load()
	return until == 0 || c.read() >= until
}

// Pick chooses an instance for one call and counts the call as in flight; report
// its end with Done.
func (b *Balancer) Pick() (*Endpoint, error) {
	set := *b.set.Load()
	if len(set) == 0 {
		return nil, ErrNoInstances
	}
	now := clock{now: b.cfg.Now}
	var e *Endpoint
	switch b.cfg.Policy {
	case RoundRobin:
		e = b.pickRoundRobin(set, &now)
	case Weighted:
		e = b.pickWeighted(set, now.read(), rand.Float64())
	default:
		e = b.pickP2C(set, &now)
	}
	e.inflight.Add(1)
	return e, nil
}

// PickFor is Pick made sticky for key under the Weighted policy: the same key goes to
// the same instance while the set and weights hold, and keys spread in proportion to
// the weights. Other policies ignore key.
func (b *Balancer) PickFor(key string) (*Endpoint, error) {
	if b.cfg.Policy != Weighted || key == "" {
		return b.Pick()
	}
	set := *b.set.Load()
	if len(set) == 0 {
		return nil, ErrNoInstances
	}
	now := b.cfg.Now().UnixNano()
	var (
		best      *Endpoint
		bestScore = math.Inf(-1)
	)
	for _, e := range set {
		if !b.healthy(e, now) {
			continue
		}
		// Weighted rendezvous hashing: score = -w / ln(u), u uniform in (0,1) from the
		// hash of key and instance.
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(e.Instance.ID))
		u := (float64(mix64(h.Sum64())>>11) + 0.5) / (1 << 53)
		score := -float64(e.Instance.WeightOf()) / math.Log(u)
		if score > bestScore {
			best, bestScore = e, score
		}
	}
	if best == nil {
		best = set[0]
	}
	best.inflight.Add(1)
	return best, nil
}

// mix64 is murmur3's 64-bit finalizer: FNV leaves the high bits of similar inputs
// close together, and the rendezvous score needs them spread uniformly.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func (b *Balancer) pickRoundRobin(set []*Endpoint, now *clock) *Endpoint {
	start := b.rr.Add(1)
	for i := range set {
		e := set[(start+uint64(i))%uint64(len(set))]
		if b.up(e, now) {
			return e
		}
	}
	return set[start%uint64(len(set))]
}

func (b *Balancer) pickWeighted(set []*Endpoint, now int64, r float64) *Endpoint {
	total := 0
	for _, e := range set {
		if b.healthy(e, now) {
			total += e.Instance.WeightOf()
		}
	}
	if total == 0 {
		return set[rand.IntN(len(set))]
	}
	x := r * float64(total)
	for _, e := range set {
		if !b.healthy(e, now) {
			continue
		}
		x -= float64(e.Instance.WeightOf())
		if x < 0 {
			return e
		}
	}
	return set[len(set)-1]
}

func (b *Balancer) pickP2C(set []*Endpoint, now *clock) *Endpoint {
	if len(set) == 1 {
		return set[0]
	}
	// Two distinct draws; a few attempts to find healthy ones, then take what we got.
	var a, c *Endpoint
	for range 4 {
		i := rand.IntN(len(set))
		j := rand.IntN(len(set) - 1)
		if j >= i {
			j++
		}
		a, c = set[i], set[j]
		ha, hc := b.up(a, now), b.up(c, now)
		switch {
		case ha && hc:
			if score(c) < score(a) {
				return c
			}
			return a
		case ha:
			return a
		case hc:
			return c
		}
	}
	return a
}

func score(e *Endpoint) float64 {
	lat := math.Float64frombits(e.ewmaNanos.Load())
	if lat == 0 {
		lat = 1 // an instance with no history yet is worth trying
	}
	return float64(e.inflight.Load()+1) * lat
}

// Outcome of a call, as far as the balancer is concerned.
type Outcome uint8

// The outcomes.
const (
	// Success: the instance answered (4xx included: the instance is fine).
	Success Outcome = iota
	// Failure: connection error, timeout or 5xx — counts toward ejection.
	Failure
	// Canceled: the caller gave up; says nothing about the instance.
	Canceled
	// Unreachable: the instance refused the connection — nothing listens there (a
	// crashed process whose registration has not expired yet). Ejected at once.
	Unreachable
)

// Done ends a call begun with Pick, recording its latency and outcome.
func (b *Balancer) Done(e *Endpoint, latency time.Duration, outcome Outcome) {
	if outcome == Canceled {
		e.inflight.Add(-1)
		return
	}
	b.DoneAt(e, latency, outcome, b.cfg.Now())
}

// DoneAt is Done for a call that ended at now, a time the caller read from the
// balancer's clock (Config.Now) to measure the latency: the balancer need not read
// it again.
func (b *Balancer) DoneAt(e *Endpoint, latency time.Duration, outcome Outcome, now time.Time) {
	e.inflight.Add(-1)
	if outcome == Canceled {
		return
	}
	b.observe(e, latency, now)
	if outcome == Success {
		e.failures.Store(0)
		if t := e.timesEjected.Load(); t > 0 && now.UnixNano()-e.lastEjected.Load() > int64(b.cfg.EjectMax) {
			e.timesEjected.Store(0) // healthy for a long while: forget its record
		}
		return
	}
	if int(e.failures.Add(1)) >= b.cfg.EjectAfter || outcome == Unreachable {
		b.eject(e, now)
	}
}

func (b *Balancer) observe(e *Endpoint, latency time.Duration, now time.Time) {
	n := now.UnixNano()
	last := e.lastSample.Swap(n)
	old := math.Float64frombits(e.ewmaNanos.Load())
	sample := float64(latency)
	var next float64
	if old == 0 || last == 0 {
		next = sample
	} else {
		w := math.Exp(-float64(n-last) / float64(b.cfg.Decay))
		next = old*w + sample*(1-w)
		if sample > old {
			next = (old + sample) / 2 // react quickly to a slowdown
		}
	}
	e.ewmaNanos.Store(math.Float64bits(next))
}

func (b *Balancer) eject(e *Endpoint, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := now.UnixNano()
	if !b.healthy(e, n) {
		return // already ejected
	}
	set := *b.set.Load()
	ejected := 0
	for _, x := range set {
		if !b.healthy(x, n) {
			ejected++
		}
	}
	if (ejected+1)*100 > len(set)*b.cfg.MaxEjectedPercent {
		return // would exceed the cap
	}
	times := e.timesEjected.Add(1)
	d := min(time.Duration(times)*b.cfg.EjectBase, b.cfg.EjectMax)
	until := now.Add(d)
	e.ejectedUntil.Store(until.UnixNano())
	e.lastEjected.Store(n)
	e.failures.Store(0)
	if b.cfg.OnEject != nil {
		b.cfg.OnEject(e.Instance, until)
	}
}

// Ejected reports whether e is ejected now.
func (b *Balancer) Ejected(e *Endpoint) bool { return !b.healthy(e, b.cfg.Now().UnixNano()) }
