package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rejected *prometheus.CounterVec
	limit    prometheus.Gauge
	canary   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rejected_total",
			Help: "Requests the gateway answered itself without passing them on, by reason.",
		}, []string{"reason"}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_concurrency_limit",
			Help: "The adaptive concurrency limit the load shedder currently applies.",
		}),
		canary: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_routed_total",
			Help: "Requests passed on, by route and side (stable or canary).",
		}, []string{"route", "side"}),
	}
	if reg != nil {
		reg.MustRegister(m.rejected, m.limit, m.canary)
	}
	return m
}
