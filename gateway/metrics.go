package gateway

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rejected *prometheus.CounterVec
	limit    prometheus.Gauge
	canary   *prometheus.CounterVec
	cache    *prometheus.CounterVec
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
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_cache_requests_total",
			Help: "Safe requests on cached routes, by route and result: hit (answered from the cache), miss (passed on), stale (a stale entry answered for a failing service), bypass (not cacheable: no-store asked, or unverified credentials).",
		}, []string{"route", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.rejected, m.limit, m.canary, m.cache)
	}
	return m
}
