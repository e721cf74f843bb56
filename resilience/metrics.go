package resilience

import (
	"errors"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/problem"
)

// Metrics are the per-dependency resilience metrics of a process:
//
//	rpc_client_calls_total{dependency,outcome}         outcome: ok, error, rejected, timeout, shed
//	rpc_client_dependency_call_duration_seconds{dependency}
//	rpc_client_retries_total{dependency}
//	rpc_client_hedges_total{dependency}
//	rpc_client_breaker_state{dependency}               0 closed, 1 half-open, 2 open
//	rpc_client_bulkhead_in_use{dependency}
//	rpc_client_bulkhead_rejections_total{dependency}
//	rpc_client_retry_budget_exhausted_total{dependency}
//	rpc_client_ejections_total{dependency}
type Metrics struct {
	calls, retries, hedges, rejections, exhausted, ejections *prometheus.CounterVec
	duration                                                 *prometheus.HistogramVec
	breaker, inUse                                           *prometheus.GaugeVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	dep := []string{"dependency"}
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpc_client_calls_total",
			Help: "Calls to a dependency by outcome: ok, error (failed answer or transport error), rejected (breaker, bulkhead or budget), timeout, shed (the dependency refused for now: 429 or 503 with Retry-After)."}, []string{"dependency", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rpc_client_dependency_call_duration_seconds",
			Help: "Time of a call to a dependency, retries included.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, dep),
		retries:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpc_client_retries_total", Help: "Retries sent to a dependency."}, dep),
		hedges:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpc_client_hedges_total", Help: "Hedged attempts sent to a dependency."}, dep),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpc_client_bulkhead_rejections_total", Help: "Calls refused because the dependency's bulkhead was full."}, dep),
		exhausted:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpc_client_retry_budget_exhausted_total", Help: "Retries not sent because the dependency's retry budget was spent."}, dep),
		ejections:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rpc_client_ejections_total", Help: "Instances of a dependency ejected by passive health checking."}, dep),
		breaker:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rpc_client_breaker_state", Help: "Circuit breaker state of a dependency: 0 closed, 1 half-open, 2 open."}, dep),
		inUse:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rpc_client_bulkhead_in_use", Help: "Calls in flight through a dependency's bulkhead."}, dep),
	}
	for _, c := range []prometheus.Collector{m.calls, m.duration, m.retries, m.hedges, m.rejections, m.exhausted, m.ejections, m.breaker, m.inUse} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// depMetrics are the metrics of one dependency, labels resolved once. The zero
// value records nothing.
type depMetrics struct {
	ok, errs, rejected, timedOut prometheus.Counter
	shed                         prometheus.Counter
	duration                     prometheus.Observer
	retries, hedges, rejections  prometheus.Counter
	exhausted                    prometheus.Counter
	breaker, inUse               prometheus.Gauge
}

func (m *Metrics) forDependency(dep string) depMetrics {
	if m == nil {
		return depMetrics{}
	}
	return depMetrics{
		ok: m.calls.WithLabelValues(dep, "ok"), errs: m.calls.WithLabelValues(dep, "error"),
		rejected: m.calls.WithLabelValues(dep, "rejected"), timedOut: m.calls.WithLabelValues(dep, "timeout"),
		shed:     m.calls.WithLabelValues(dep, "shed"),
		duration: m.duration.WithLabelValues(dep),
		retries:  m.retries.WithLabelValues(dep), hedges: m.hedges.WithLabelValues(dep),
		rejections: m.rejections.WithLabelValues(dep), exhausted: m.exhausted.WithLabelValues(dep),
		breaker: m.breaker.WithLabelValues(dep), inUse: m.inUse.WithLabelValues(dep),
	}
}

// enabled reports whether d records anything: a call's duration need not be
// measured otherwise.
func (d depMetrics) enabled() bool { return d.ok != nil }

func (d depMetrics) call(resp *http.Response, err error, took time.Duration) {
	if d.ok == nil {
		return
	}
	d.duration.Observe(took.Seconds())
	var pe *problem.Error
	switch {
	case err == nil && shed(resp):
		d.shed.Inc()
	case err == nil && !failed(resp, nil):
		d.ok.Inc()
	case errors.As(err, &pe) && pe.Kind == problem.Unavailable:
		d.rejected.Inc()
	case problem.KindOf(err) == problem.Timeout:
		d.timedOut.Inc()
	default:
		d.errs.Inc()
	}
}

func (d depMetrics) retry() {
	if d.retries != nil {
		d.retries.Inc()
	}
}

func (d depMetrics) hedge() {
	if d.hedges != nil {
		d.hedges.Inc()
	}
}

func (d depMetrics) bulkheadRejected() {
	if d.rejections != nil {
		d.rejections.Inc()
	}
}

func (d depMetrics) budgetExhausted() {
	if d.exhausted != nil {
		d.exhausted.Inc()
	}
}

func (d depMetrics) bulkheadInUse(delta float64) {
	if d.inUse != nil {
		d.inUse.Add(delta)
	}
}

func (d depMetrics) breakerState(s circuitbreaker.State) {
	if d.breaker == nil {
		return
	}
	switch s {
	case circuitbreaker.OpenState:
		d.breaker.Set(2)
	case circuitbreaker.HalfOpenState:
		d.breaker.Set(1)
	default:
		d.breaker.Set(0)
	}
}

// RetriesCounter exposes the retries counter of dep, for tests and dashboards.
func (m *Metrics) RetriesCounter(dep string) prometheus.Counter {
	return m.retries.WithLabelValues(dep)
}

// BudgetExhaustedCounter exposes the budget-exhaustion counter of dep.
func (m *Metrics) BudgetExhaustedCounter(dep string) prometheus.Counter {
	return m.exhausted.WithLabelValues(dep)
}

// Ejected counts an ejection of an instance of dep; hand it to the balancer's OnEject.
func (m *Metrics) Ejected(dep string) func() {
	if m == nil {
		return func() {}
	}
	c := m.ejections.WithLabelValues(dep)
	return c.Inc
}
