// Package monitoring derives what operators watch from what the platform declares:
// Prometheus alerting rules from each service's dependencies, policies, events and
// sagas, and a Grafana dashboard over the metrics the toolkit exports. Both are
// generated (`switchyard deploy monitoring`) and committed under deploy/, and CI
// checks them with promtool.
//
// Metrics are assumed scraped with job set to the service's name (the compose file
// and the Kubernetes manifests do so).
package monitoring

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/switchyard/switchyard/config"
)

// Objective is the availability every service is held to when measuring
// error-budget burn: at most one request in a thousand answered with a 5xx.
const Objective = 0.999

// Input is what the rules and the dashboard are drawn from.
type Input struct {
	// Services, the gateway included (as a service whose dependencies are the
	// services its routes lead to).
	Services []*config.Service
	// Sagas names the services that run sagas, with the deadline before their pivot.
	Sagas map[string]time.Duration
	// Registry is set when services find each other through a registry that can
	// become unreachable (discovery kind nats), rather than the platform's DNS.
	Registry bool
}

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []Group `yaml:"groups" json:"groups"`
}

// Group is a rule group.
type Group struct {
	Name  string `yaml:"name" json:"name"`
	Rules []Rule `yaml:"rules" json:"rules"`
}

// Rule is an alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert" json:"alert"`
	Expr        string            `yaml:"expr" json:"expr"`
	For         string            `yaml:"for,omitempty" json:"for,omitempty"`
	Labels      map[string]string `yaml:"labels" json:"labels"`
	Annotations map[string]string `yaml:"annotations" json:"annotations"`
}

func rule(alert, expr, forDur, severity, service, summary string) Rule {
	return Rule{Alert: alert, Expr: expr, For: forDur,
		Labels:      map[string]string{"severity": severity, "service": service},
		Annotations: map[string]string{"summary": summary}}
}

// promDuration writes d as Prometheus does (1m, 30s, 1h30m), at least a second.
func promDuration(d time.Duration) string {
	d = max(d.Round(time.Second), time.Second)
	out := ""
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.d; n > 0 {
			out += fmt.Sprintf("%d%s", n, u.unit)
			d -= n * u.d
		}
	}
	return out
}

// Rules derives the alerting rules, one group per service:
//
//   - each dependency (each has a circuit breaker): the breaker stayed open longer than its
//     open_for (it keeps failing its probes);
//   - a service that consumes events: dead letters appeared; the consumer lag keeps
//     growing;
//   - a service that publishes events: its oldest unsent outbox row is older than a
//     minute (the relay is stuck or the broker unreachable); over a thousand events
//     wait to be sent;
//   - a service with dependencies, when discovery uses a registry: its view of them
//     has been stale for a minute (the registry does not answer it);
//   - every service: it burns its error budget (Objective) fast — 14.4× over an hour
//     and five minutes, the multiwindow rule of the Google SRE workbook;
//   - a service running sagas: a saga was declared stuck, sagas keep waiting on a
//     failing step, new sagas were refused for want of capacity, or sagas outlive
//     their deadline.
func Rules(in Input) RuleFile {
	var f RuleFile
	services := slices.Clone(in.Services)
	slices.SortFunc(services, func(a, b *config.Service) int { return cmp.Compare(a.Name, b.Name) })
	for _, s := range services {
		g := Group{Name: "switchyard-" + s.Name}
		job := fmt.Sprintf(`job=%q`, s.Name)
		for _, d := range slices.Sorted(maps.Keys(s.Dependencies)) {
			openFor := s.Dependencies[d].Policy.Breaker.OpenFor.Std()
			if openFor <= 0 {
				openFor = 5 * time.Second
			}
			r := rule("SwitchyardBreakerOpen",
				fmt.Sprintf(`max by (job, dependency) (rpc_client_breaker_state{%s, dependency=%q}) == 2`, job, d),
				promDuration(max(2*openFor, time.Minute)), "warning", s.Name,
				fmt.Sprintf("The circuit breaker from %s to %s is open: those calls fail fast.", s.Name, d))
			r.Labels["dependency"] = d
			g.Rules = append(g.Rules, r)
		}
		if in.Registry && len(s.Dependencies) > 0 {
			g.Rules = append(g.Rules, rule("SwitchyardDiscoveryStale",
				fmt.Sprintf(`max by (job) (discovery_view_stale{%s}) == 1`, job), "1m", "warning", s.Name,
				fmt.Sprintf("%s cannot read the service registry: it calls the instances it last knew and sees no new ones.", s.Name)))
		}
		if len(s.Subscriptions) > 0 {
			g.Rules = append(g.Rules,
				rule("SwitchyardDeadLetters", fmt.Sprintf(`sum by (job, group) (increase(bus_dead_letters_total{%s}[10m])) > 0`, job), "",
					"warning", s.Name, fmt.Sprintf("%s dead-lettered events in the last 10 minutes: see switchyard events dlq list.", s.Name)),
				rule("SwitchyardConsumerLagGrowing", fmt.Sprintf(`min_over_time(bus_consumer_lag{%s}[10m]) > 1000 and deriv(bus_consumer_lag{%s}[10m]) > 0`, job, job), "5m",
					"warning", s.Name, fmt.Sprintf("%s falls behind the events it consumes: over 1000 waiting and growing.", s.Name)))
		}
		if len(s.Publishes) > 0 {
			g.Rules = append(g.Rules, rule("SwitchyardOutboxStuck",
				fmt.Sprintf(`max by (job) (outbox_oldest_unsent_age_seconds{%s}) > 60`, job), "2m", "critical", s.Name,
				fmt.Sprintf("The oldest event %s has not sent is over a minute old: its relay is stuck or the broker unreachable.", s.Name)),
				rule("SwitchyardOutboxBacklog", fmt.Sprintf(`max by (job) (outbox_backlog{%s}) > 1000`, job), "2m", "warning", s.Name,
					fmt.Sprintf("Over a thousand events %s wrote wait to be sent: the broker is unreachable or slow (they are kept, and sent when it answers).", s.Name)))
		}
		budget := 1 - Objective
		ratio := func(window string) string {
			return fmt.Sprintf(`sum by (job) (rate(http_server_requests_total{%s, code=~"5.."}[%s])) / sum by (job) (rate(http_server_requests_total{%s}[%s]))`,
				job, window, job, window)
		}
		g.Rules = append(g.Rules, rule("SwitchyardErrorBudgetBurn",
			fmt.Sprintf(`(%s) > %.4g and (%s) > %.4g`, ratio("1h"), 14.4*budget, ratio("5m"), 14.4*budget), "2m", "critical", s.Name,
			fmt.Sprintf("%s answers over %.1f%% of requests with a server error: at this rate the month's error budget (%.1f%% availability) lasts two days.",
				s.Name, 100*14.4*budget, 100*Objective)))
		if deadline, ok := in.Sagas[s.Name]; ok {
			g.Rules = append(g.Rules,
				rule("SwitchyardSagaStuck", fmt.Sprintf(`sum by (job) (increase(saga_finished_total{%s, outcome="stuck"}[15m])) > 0`, job), "",
					"critical", s.Name, fmt.Sprintf("A saga of %s is stuck — a step past the pivot refused, or it or a compensation kept failing — and needs a person (its reason is on the saga).", s.Name)),
				rule("SwitchyardSagaRetrying", fmt.Sprintf(`max by (job) (saga_retrying{%s}) > 0`, job), "5m",
					"warning", s.Name, fmt.Sprintf("Sagas of %s have been waiting on a failing step for five minutes: a dependency is down or refusing.", s.Name)),
				rule("SwitchyardSagaRefused", fmt.Sprintf(`sum by (job) (increase(saga_refused_total{%s}[5m])) > 0`, job), "",
					"warning", s.Name, fmt.Sprintf("%s is at capacity: it refused new sagas (orders) rather than queue them past their deadline. Add replicas.", s.Name)),
				rule("SwitchyardSagaSlow", fmt.Sprintf(`histogram_quantile(0.99, sum by (job, le) (rate(saga_duration_seconds_bucket{%s}[10m]))) > %g`, job, deadline.Seconds()), "10m",
					"warning", s.Name, fmt.Sprintf("1%% of %s sagas take longer than their %s deadline.", s.Name, deadline)))
		}
		f.Groups = append(f.Groups, g)
	}
	return f
}
