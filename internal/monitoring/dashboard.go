package monitoring

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Dashboard is a Grafana dashboard (JSON model, schema 39) over the toolkit's
// metrics: a row of RED panels for every service (request rate by status class,
// error ratio against the objective, p50/p99 latency), and rows for calls between
// services (rate by outcome, breaker states, retries), events (outbox age, consumer
// lag, dead letters) and sagas. A datasource variable picks the Prometheus.
func Dashboard(in Input) ([]byte, error) {
	var panels []map[string]any
	id := 0
	y := 0
	row := func(title string) {
		id++
		panels = append(panels, map[string]any{"id": id, "type": "row", "title": title, "collapsed": false,
			"gridPos": map[string]int{"h": 1, "w": 24, "x": 0, "y": y}})
		y++
	}
	panel := func(title, unit string, x, w int, targets ...[2]string) {
		id++
		var ts []map[string]any
		for i, t := range targets {
			ts = append(ts, map[string]any{"refId": string(rune('A' + i)), "expr": t[0], "legendFormat": t[1],
				"datasource": map[string]string{"type": "prometheus", "uid": "${datasource}"}})
		}
		panels = append(panels, map[string]any{
			"id": id, "type": "timeseries", "title": title,
			"datasource":  map[string]string{"type": "prometheus", "uid": "${datasource}"},
			"gridPos":     map[string]int{"h": 7, "w": w, "x": x, "y": y},
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": unit}, "overrides": []any{}},
			"options":     map[string]any{"legend": map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true}},
			"targets":     ts,
		})
	}
	names := make([]string, 0, len(in.Services))
	for _, s := range in.Services {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	for _, n := range names {
		job := fmt.Sprintf(`job=%q`, n)
		row(n)
		panel("Requests by status", "reqps", 0, 8,
			[2]string{fmt.Sprintf(`sum by (code) (rate(http_server_requests_total{%s}[$__rate_interval]))`, job), "{{code}}"})
		panel("Error ratio (objective "+fmt.Sprintf("%.1f%%", 100*Objective)+")", "percentunit", 8, 8,
			[2]string{fmt.Sprintf(`sum(rate(http_server_requests_total{%s, code=~"5.."}[$__rate_interval])) / sum(rate(http_server_requests_total{%s}[$__rate_interval]))`, job, job), "5xx share"},
			[2]string{fmt.Sprintf("vector(%g)", 1-Objective), "budget"})
		panel("Latency", "s", 16, 8,
			[2]string{fmt.Sprintf(`histogram_quantile(0.5, sum by (le) (rate(http_server_request_duration_seconds_bucket{%s}[$__rate_interval])))`, job), "p50"},
			[2]string{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{%s}[$__rate_interval])))`, job), "p99"})
		y += 7
	}
	row("Calls between services")
	panel("Calls by outcome", "reqps", 0, 8, [2]string{`sum by (job, dependency, outcome) (rate(rpc_client_calls_total[$__rate_interval]))`, "{{job}} → {{dependency}} {{outcome}}"})
	panel("Breaker state (0 closed, 1 half-open, 2 open)", "none", 8, 8, [2]string{`max by (job, dependency) (rpc_client_breaker_state)`, "{{job}} → {{dependency}}"})
	panel("Retries", "reqps", 16, 8, [2]string{`sum by (job, dependency) (rate(rpc_client_retries_total[$__rate_interval]))`, "{{job}} → {{dependency}}"})
	y += 7
	if in.Registry {
		row("Discovery")
		panel("Stale views (1: the registry does not answer; calls go to the instances last known)", "none", 0, 12,
			[2]string{`max by (job, dependency) (discovery_view_stale)`, "{{job}} → {{dependency}}"})
		panel("Registry errors", "short", 12, 12, [2]string{`sum by (job, op) (increase(discovery_registry_errors_total[$__rate_interval]))`, "{{job}} {{op}}"})
		y += 7
	}
	row("Events")
	panel("Oldest unsent outbox row", "s", 0, 6, [2]string{`max by (job) (outbox_oldest_unsent_age_seconds)`, "{{job}}"})
	panel("Outbox backlog", "short", 6, 6, [2]string{`max by (job) (outbox_backlog)`, "{{job}}"})
	panel("Consumer lag", "short", 12, 6, [2]string{`max by (job, group) (bus_consumer_lag)`, "{{group}}"})
	panel("Dead letters", "short", 18, 6, [2]string{`sum by (job, group) (increase(bus_dead_letters_total[$__rate_interval]))`, "{{group}}"})
	y += 7
	if len(in.Sagas) > 0 {
		row("Sagas")
		panel("Sagas ended by outcome", "short", 0, 8, [2]string{`sum by (job, outcome) (increase(saga_finished_total[$__rate_interval]))`, "{{job}} {{outcome}}"})
		panel("Sagas in flight", "short", 8, 8, [2]string{`sum by (job) (saga_active)`, "{{job}}"})
		panel("Sagas waiting on a failing step", "short", 16, 8, [2]string{`sum by (job) (saga_retrying)`, "{{job}}"})
	}
	dash := map[string]any{
		"uid": "switchyard", "title": "Switchyard", "schemaVersion": 39, "version": 1, "editable": true,
		"tags": []string{"switchyard"}, "time": map[string]string{"from": "now-1h", "to": "now"}, "refresh": "30s",
		"templating": map[string]any{"list": []map[string]any{{
			"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus",
		}}},
		"panels": panels,
	}
	return json.MarshalIndent(dash, "", "  ")
}
