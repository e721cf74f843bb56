package notifications

import (
	"context"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/server"
)

// Platform is the notifications service as the platform builds and runs it: it consumes the
// order and payment events switchyard.yaml subscribes it to (inbox-backed), and
// verifies customers against the users JWKS (users is its declared dependency for
// that).
func Platform() platform.Service {
	return platform.Service{Name: "notifications", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		db, err := p.Database(ctx, Migrations())
		if err != nil {
			return nil, err
		}
		in, err := p.Inbox(ctx, db)
		if err != nil {
			return nil, err
		}
		verifier, err := p.UserVerifier(ctx)
		if err != nil {
			return nil, err
		}
		svc, err := New(ctx, Config{}, Deps{DB: db, Inbox: in, Verifier: verifier, Log: p.Log, Metrics: p.Metrics.Registry})
		if err != nil {
			return nil, err
		}
		if err := p.Consume(bus.Subscription{Types: Events, Concurrency: 4}, svc.OnEvent); err != nil {
			return nil, err
		}
		p.Go(svc.Run)
		return &platform.Component{Handler: svc.Handler(), Checks: map[string]server.Check{"database": db.PingContext}}, nil
	}}
}
