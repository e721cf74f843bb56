package main

import (
	"context"

	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/server"
)

// buildUsers is the users service's composition root.
func buildUsers(ctx context.Context, p *process) (*component, error) {
	db, err := p.openStore(ctx, users.Migrations())
	if err != nil {
		return nil, err
	}
	_, services, err := p.identity()
	if err != nil {
		return nil, err
	}
	svc, err := users.New(ctx, users.Config{}, db, services, p.log, p.metrics.Registry)
	if err != nil {
		return nil, err
	}
	return &component{
		handler: svc.Handler(),
		run:     svc.Run,
		checks:  map[string]server.Check{"database": db.PingContext},
	}, nil
}
