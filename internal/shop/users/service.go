package users

import (
	"context"

	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/server"
)

// Platform is the users service as the platform builds and runs it: its database, the
// verifier of its callers' service tokens, and the key rotation in the background.
func Platform() platform.Service {
	return platform.Service{Name: "users", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		db, err := p.Database(ctx, Migrations())
		if err != nil {
			return nil, err
		}
		callers, err := p.Callers()
		if err != nil {
			return nil, err
		}
		svc, err := New(ctx, Config{}, Deps{DB: db, Callers: callers, Log: p.Log, Metrics: p.Metrics.Registry})
		if err != nil {
			return nil, err
		}
		p.Go(svc.Run)
		return &platform.Component{Handler: svc.Handler(), Checks: map[string]server.Check{"database": db.PingContext}}, nil
	}}
}
