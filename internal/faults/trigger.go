package faults

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/telemetry"
)

// Trigger holds a fault back, from its At on, until something happens in the
// system: a counter of one service's /metrics rises.
type Trigger struct {
	// Service whose /metrics is read (its first process).
	Service string `yaml:"service"`
	// SagaStep fires when a try of this saga step has run (the count of the saga
	// orchestrator's saga_step_duration_seconds for the step rises): the fault hits
	// between that step and the next.
	SagaStep string `yaml:"saga_step,omitempty"`
	// Metric fires when this metric (a counter, or a histogram's or summary's
	// count), summed over the series with Labels, rises by Rises.
	Metric string            `yaml:"metric,omitempty"`
	Labels map[string]string `yaml:"labels,omitempty"`
	// Rises is how much the metric must rise after At [1].
	Rises float64 `yaml:"rises,omitempty"`
}

func (t *Trigger) String() string {
	if t.SagaStep != "" {
		return fmt.Sprintf("when %s has tried saga step %s", t.Service, t.SagaStep)
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(t.Labels)) {
		labels = append(labels, fmt.Sprintf("%s=%q", k, t.Labels[k]))
	}
	return fmt.Sprintf("when %s's %s{%s} rises by %g", t.Service, t.Metric, strings.Join(labels, ","), t.rises())
}

func (t *Trigger) rises() float64 {
	if t.Rises <= 0 {
		return 1
	}
	return t.Rises
}

// metric is the series the trigger sums.
func (t *Trigger) metric() (string, map[string]string) {
	if t.SagaStep != "" {
		return "saga_step_duration_seconds", map[string]string{"step": t.SagaStep}
	}
	return t.Metric, t.Labels
}

// wait reads the service's metric every 50 ms until it has risen by Rises since
// the first reading, or until the deadline, and returns how long it waited.
func (t *Trigger) wait(ctx context.Context, data string, deadline time.Time) (time.Duration, error) {
	began := time.Now()
	client := &http.Client{Timeout: time.Second}
	first, seen := 0.0, false
	for {
		if v, err := t.read(ctx, client, data); err == nil {
			if !seen {
				first, seen = v, true
			} else if v-first >= t.rises() {
				return time.Since(began), nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the trigger (%s) did not fire before the load ended", t)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// read sums the trigger's series on the service's first process; a process that
// has not registered the metric yet reads 0.
func (t *Trigger) read(ctx context.Context, client *http.Client, data string) (float64, error) {
	procs, err := stackOf(data)
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		if p.Name != t.Service || p.URL == "" {
			continue
		}
		families, err := telemetry.Scrape(ctx, client, p.URL+"/metrics")
		if err != nil {
			return 0, err
		}
		name, labels := t.metric()
		f := families[name]
		if f == nil {
			f = families[strings.TrimSuffix(name, "_count")]
		}
		return sum(f, labels), nil
	}
	return 0, fmt.Errorf("no running %s in the stack", t.Service)
}

// sum adds up the counters (or histogram and summary counts) of f whose labels
// include labels.
func sum(f *dto.MetricFamily, labels map[string]string) float64 {
	if f == nil {
		return 0
	}
	total := 0.0
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		case m.GetSummary() != nil:
			total += float64(m.GetSummary().GetSampleCount())
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total
}

// reading is a metric's value on one process.
type reading struct {
	pid   int
	value float64
}

// readBounds reads every bounded metric, in order; a process not running reads
// as nothing.
func readBounds(ctx context.Context, data string, bounds []MetricBound) []reading {
	client := &http.Client{Timeout: time.Second}
	out := make([]reading, len(bounds))
	procs, _ := stackOf(data)
	for i, b := range bounds {
		v, err := b.trigger().read(ctx, client, data)
		if err != nil {
			continue
		}
		out[i].value = v
		for _, p := range procs {
			if p.Name == b.Service {
				out[i].pid = p.PID
			}
		}
	}
	return out
}

// judgeMetrics records a verdict per bound: how much its metric rose.
func (r *Result) judgeMetrics(bounds []MetricBound, before, after []reading) {
	for i, b := range bounds {
		from, note := before[i].value, ""
		if before[i].pid != after[i].pid {
			from, note = 0, fmt.Sprintf(" (%s restarted: counted from zero)", b.Service)
		}
		rise := after[i].value - from
		var want []string
		held := true
		if b.AtLeast != nil {
			want = append(want, fmt.Sprintf("≥ %g", *b.AtLeast))
			held = held && rise >= *b.AtLeast
		}
		if b.AtMost != nil {
			want = append(want, fmt.Sprintf("≤ %g", *b.AtMost))
			held = held && rise <= *b.AtMost
		}
		t := b.trigger()
		name, labels := t.metric()
		var ls []string
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			ls = append(ls, fmt.Sprintf("%s=%q", k, labels[k]))
		}
		r.verdict(fmt.Sprintf("%s's %s{%s} rose %s", b.Service, name, strings.Join(ls, ","), strings.Join(want, " and ")), held,
			"rose by %g, %g → %g%s", rise, from, after[i].value, note)
	}
}
