package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/kafkabus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/store"
)

// eventRegistry returns the event schema registry (api/events).
func (p *process) eventRegistry() (*event.Registry, error) {
	if p.events == nil {
		reg, err := event.NewRegistry(events.Schemas)
		if err != nil {
			return nil, err
		}
		p.events = reg
	}
	return p.events, nil
}

// bus returns the process's event bus on the configured broker.
func (p *process) bus() (bus.Bus, error) {
	if p.eventBus != nil {
		return p.eventBus, nil
	}
	reg, err := p.eventRegistry()
	if err != nil {
		return nil, err
	}
	if p.busMetrics == nil {
		if p.busMetrics, err = bus.NewMetrics(p.metrics.Registry); err != nil {
			return nil, err
		}
	}
	switch p.cfg.Broker.Kind {
	case "nats":
		nc, err := p.nats()
		if err != nil {
			return nil, fmt.Errorf("event bus: %w", err)
		}
		b, err := natsbus.New(nc, natsbus.Config{Registry: reg, Replicas: p.cfg.Broker.Replicas, Tracer: p.tracing.Tracer("switchyard/bus"), Logger: p.log, Metrics: p.busMetrics})
		if err != nil {
			return nil, err
		}
		p.eventBus = b
	case "kafka":
		b, err := kafkabus.New(kafkabus.Config{Seeds: strings.Split(p.cfg.Broker.URL, ","), Registry: reg,
			Tracer: p.tracing.Tracer("switchyard/bus"), Logger: p.log, Metrics: p.busMetrics})
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, b.Close)
		p.eventBus = b
	}
	return p.eventBus, nil
}

// outbox gives db an outbox for the service's declared publications, and runs its
// relay in the last phase of the process's life (it flushes after the consumers).
func (p *process) outbox(ctx context.Context, db *store.DB) (*outbox.Outbox, error) {
	if err := db.Migrate(ctx, outbox.Migrations(), p.log); err != nil {
		return nil, err
	}
	reg, err := p.eventRegistry()
	if err != nil {
		return nil, err
	}
	ob, err := outbox.New(db, outbox.Config{Name: p.name, Registry: reg, Tracer: p.tracing.Tracer("switchyard/outbox"),
		Types: slices.Clone(p.service.Publishes)})
	if err != nil {
		return nil, err
	}
	b, err := p.bus()
	if err != nil {
		return nil, err
	}
	relay, err := ob.Relay(outbox.RelayConfig{Bus: b, Logger: p.log, Tracer: p.tracing.Tracer("switchyard/outbox"), Metrics: p.metrics.Registry})
	if err != nil {
		return nil, err
	}
	p.runs = append(p.runs, relay.Run)
	return ob, nil
}

// inbox gives db an inbox, pruned of records older than a week (far beyond the
// broker's redelivery horizon), committing concurrent handlers in groups.
func (p *process) inbox(ctx context.Context, db *store.DB) (*inbox.Inbox, error) {
	if err := db.Migrate(ctx, inbox.Migrations(), p.log); err != nil {
		return nil, err
	}
	in, err := inbox.New(db, p.metrics.Registry)
	if err != nil {
		return nil, err
	}
	p.runs = append(p.runs,
		func(ctx context.Context) error { return in.Run(ctx, 7*24*time.Hour) },
		// Concurrent handlers share transactions: one commit for many events.
		func(ctx context.Context) error { return in.RunGroupCommit(ctx, 64) })
	return in, nil
}

// consume subscribes handler to the given event types as the service's consumer
// group — those of them that switchyard.yaml lists under the service's
// subscriptions: the configuration decides what a service consumes. Consumers stop
// after the HTTP server has drained and before the relay flushes.
func (p *process) consume(sub bus.Subscription, handler bus.Handler) error {
	declared := slices.DeleteFunc(slices.Clone(sub.Types), func(t string) bool { return !slices.Contains(p.service.Subscriptions, t) })
	for _, t := range sub.Types {
		if !slices.Contains(declared, t) {
			p.log.Info("not consuming an event type the service can handle: switchyard.yaml does not subscribe it", "type", t)
		}
	}
	if len(declared) == 0 {
		return nil
	}
	sub.Types = declared
	if sub.Group == "" {
		sub.Group = p.name
	}
	b, err := p.bus()
	if err != nil {
		return err
	}
	p.consumers = append(p.consumers, func(ctx context.Context) error { return b.Subscribe(ctx, sub, handler) })
	return nil
}
