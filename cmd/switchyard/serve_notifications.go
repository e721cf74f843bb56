package main

import (
	"context"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/internal/shop/notifications"
	"github.com/switchyard/switchyard/server"
)

// buildNotifications is the notifications service's composition root: it consumes
// the order and payment events switchyard.yaml subscribes it to, and verifies
// customers against the users JWKS (users is its declared dependency for that).
func buildNotifications(ctx context.Context, p *process) (*component, error) {
	db, err := p.openStore(ctx, notifications.Migrations())
	if err != nil {
		return nil, err
	}
	in, err := p.inbox(ctx, db)
	if err != nil {
		return nil, err
	}
	users, err := p.client(ctx, "users")
	if err != nil {
		return nil, err
	}
	verifier, err := customerVerifier(users)
	if err != nil {
		return nil, err
	}
	svc, err := notifications.New(notifications.Config{}, notifications.Deps{DB: db, Inbox: in, Verifier: verifier, Log: p.log, Metrics: p.metrics.Registry})
	if err != nil {
		return nil, err
	}
	if err := p.consume(bus.Subscription{Types: notifications.Events, Concurrency: 4}, svc.OnEvent); err != nil {
		return nil, err
	}
	return &component{
		handler: svc.Handler(),
		run:     svc.Run,
		checks:  map[string]server.Check{"database": db.PingContext},
	}, nil
}
