package saga

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	started   prometheus.Counter
	recovered prometheus.Counter
	refused   prometheus.Counter
	active    prometheus.Gauge
	retrying  prometheus.Gauge
	finished  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	step      *prometheus.HistogramVec
}

func (m *metrics) register(reg prometheus.Registerer, name string) error {
	labels := prometheus.Labels{"saga": name}
	m.started = prometheus.NewCounter(prometheus.CounterOpts{Name: "saga_started_total", Help: "Sagas started.", ConstLabels: labels})
	m.recovered = prometheus.NewCounter(prometheus.CounterOpts{Name: "saga_recovered_total", Help: "Sagas taken over after their owner's lease expired.", ConstLabels: labels})
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "saga_refused_total", Help: "Sagas refused at start because as many as can run were already waiting.", ConstLabels: labels})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{Name: "saga_active", Help: "Sagas this process is running now.", ConstLabels: labels})
	m.retrying = prometheus.NewGauge(prometheus.GaugeOpts{Name: "saga_retrying", Help: "Sagas whose current step (or compensation) failed and waits to be tried again.", ConstLabels: labels})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saga_finished_total", Help: "Sagas ended, by outcome (done, compensated, stuck).", ConstLabels: labels}, []string{"outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saga_duration_seconds", Help: "Time from a saga's start to its end, by outcome.",
		ConstLabels: labels, Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"outcome"})
	m.step = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saga_step_duration_seconds", Help: "One try of a step or compensation, by result (ok, refused, error).",
		ConstLabels: labels, Buckets: prometheus.DefBuckets}, []string{"step", "action", "result"})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.started, m.recovered, m.refused, m.active, m.retrying, m.finished, m.duration, m.step} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("saga %s metrics: %w", name, err)
		}
	}
	return nil
}
