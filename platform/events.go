package platform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/kafkabus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/store"
)

// Events is the event schema registry (Options.Events).
func (p *Process) Events() (*event.Registry, error) {
	if p.events != nil {
		return p.events, nil
	}
	if p.opt.Events == nil {
		return nil, errors.New("platform: no event schemas (Options.Events)")
	}
	reg, err := event.NewRegistry(p.opt.Events)
	if err != nil {
		return nil, err
	}
	p.events = reg
	return reg, nil
}

// Bus returns the process's event bus on the configured broker.
func (p *Process) Bus() (bus.Bus, error) {
	if p.eventBus != nil {
		return p.eventBus, nil
	}
	reg, err := p.Events()
	if err != nil {
		return nil, err
	}
	if p.busMetrics == nil {
		if p.busMetrics, err = bus.NewMetrics(p.Metrics.Registry); err != nil {
			return nil, err
		}
	}
	switch p.Config.Broker.Kind {
	case "nats":
		nc, err := p.nats()
		if err != nil {
			return nil, fmt.Errorf("event bus: %w", err)
		}
		b, err := natsbus.New(nc, natsbus.Config{Registry: reg, Replicas: p.Config.Broker.Replicas,
			Tracer: p.Tracing.Tracer("switchyard/bus"), Logger: p.Log, Metrics: p.busMetrics})
		if err != nil {
			return nil, err
		}
		p.eventBus = b
	case "kafka":
		b, err := kafkabus.New(kafkabus.Config{Seeds: strings.Split(p.Config.Broker.URL, ","), Registry: reg,
			Tracer: p.Tracing.Tracer("switchyard/bus"), Logger: p.Log, Metrics: p.busMetrics})
		if err != nil {
			return nil, err
		}
		p.OnClose(b.Close)
		p.eventBus = b
	default:
		return nil, fmt.Errorf("event bus: broker kind %q", p.Config.Broker.Kind)
	}
	return p.eventBus, nil
}

// Outbox gives db an outbox for the service's declared publications (any other
// type is refused when added), and runs its relay in the last phase of the
// process's life: it flushes after the consumers have stopped.
func (p *Process) Outbox(ctx context.Context, db *store.DB) (*outbox.Outbox, error) {
	if err := db.Migrate(ctx, outbox.Migrations(), p.Log); err != nil {
		return nil, err
	}
	reg, err := p.Events()
	if err != nil {
		return nil, err
	}
	b, err := p.Bus()
	if err != nil {
		return nil, err
	}
	system := natsbus.System
	if s, ok := b.(interface{ System() bus.System }); ok {
		system = s.System()
	}
	ob, err := outbox.New(db, outbox.Config{Name: p.Name, Registry: reg, Tracer: p.Tracing.Tracer("switchyard/outbox"),
		Types: slices.Clone(p.Declared.Publishes), System: system})
	if err != nil {
		return nil, err
	}
	relay, err := ob.Relay(outbox.RelayConfig{Bus: b, Logger: p.Log, Tracer: p.Tracing.Tracer("switchyard/outbox"), Metrics: p.Metrics.Registry})
	if err != nil {
		return nil, err
	}
	p.Go(relay.Run)
	return ob, nil
}

// Inbox gives db an inbox, pruned of records older than a week (far beyond the
// broker's redelivery horizon), committing concurrent handlers in groups.
func (p *Process) Inbox(ctx context.Context, db *store.DB) (*inbox.Inbox, error) {
	if err := db.Migrate(ctx, inbox.Migrations(), p.Log); err != nil {
		return nil, err
	}
	in, err := inbox.New(db, p.Metrics.Registry)
	if err != nil {
		return nil, err
	}
	p.Go(func(ctx context.Context) error { return in.Run(ctx, 7*24*time.Hour) })
	// Concurrent handlers share transactions: one commit for many events.
	p.Go(func(ctx context.Context) error { return in.RunGroupCommit(ctx, 64) })
	return in, nil
}

// Consume subscribes handler to the given event types as the service's consumer
// group — those of them that switchyard.yaml lists under the service's
// subscriptions: the declaration decides what a service consumes. Consumers start
// with the server and stop after it has drained, before the relays flush.
func (p *Process) Consume(sub bus.Subscription, handler bus.Handler) error {
	declared := slices.DeleteFunc(slices.Clone(sub.Types), func(t string) bool { return !slices.Contains(p.Declared.Subscriptions, t) })
	for _, t := range sub.Types {
		if !slices.Contains(declared, t) {
			p.Log.Info("not consuming an event type the service can handle: switchyard.yaml does not subscribe it", "type", t)
		}
	}
	if len(declared) == 0 {
		return nil
	}
	sub.Types = declared
	if sub.Group == "" {
		sub.Group = p.Name
	}
	for _, t := range declared {
		p.handlers[t] = handler
	}
	b, err := p.Bus()
	if err != nil {
		return err
	}
	p.consumers = append(p.consumers, func(ctx context.Context) error { return b.Subscribe(ctx, sub, handler) })
	return nil
}

// Deliver hands m to the handler consuming its type, as the bus would — for a
// test that feeds a consumer by hand (a redelivery, say).
func (p *Process) Deliver(ctx context.Context, m *bus.Message) error {
	h, ok := p.handlers[m.Event.Type]
	if !ok {
		return fmt.Errorf("%s consumes no %s", p.Name, m.Event.Type)
	}
	return h(ctx, m)
}
