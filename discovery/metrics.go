package discovery

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are what a process's discovery records:
//
//	discovery_registry_errors_total{op}      op: heartbeat, watch, read, create
//	discovery_view_stale{dependency}         1 while the view is the last one known, the registry unreadable
//	discovery_view_instances{dependency}     instances in the view
//
// A nil *Metrics records nothing.
type Metrics struct {
	errors    *prometheus.CounterVec
	stale     *prometheus.GaugeVec
	instances *prometheus.GaugeVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "discovery_registry_errors_total",
			Help: "Failed operations on the registry, by operation: heartbeat, watch, read, create."}, []string{"op"}),
		stale: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "discovery_view_stale",
			Help: "1 while the instances known of a dependency are the last ones read, because the registry cannot be read."}, []string{"dependency"}),
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "discovery_view_instances",
			Help: "Instances of a dependency in this process's view."}, []string{"dependency"}),
	}
	for _, c := range []prometheus.Collector{m.errors, m.stale, m.instances} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RegistryError counts a failed registry operation.
func (m *Metrics) RegistryError(op string) {
	if m != nil {
		m.errors.WithLabelValues(op).Inc()
	}
}

// View records the state of a dependency's view.
func (m *Metrics) View(dependency string, instances int, stale bool) {
	if m == nil {
		return
	}
	m.instances.WithLabelValues(dependency).Set(float64(instances))
	s := 0.0
	if stale {
		s = 1
	}
	m.stale.WithLabelValues(dependency).Set(s)
}
