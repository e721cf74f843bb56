package main

import (
	"context"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/server"
)

// buildCatalog is the catalog service's composition root.
func buildCatalog(ctx context.Context, p *process) (*component, error) {
	db, err := p.openStore(ctx, catalog.Migrations())
	if err != nil {
		return nil, err
	}
	in, err := p.inbox(ctx, db)
	if err != nil {
		return nil, err
	}
	svc, err := catalog.New(ctx, catalog.Config{}, catalog.Deps{DB: db, Log: p.log, Inbox: in})
	if err != nil {
		return nil, err
	}
	if err := p.consume(bus.Subscription{Types: []string{catalog.EventStockChanged}, Concurrency: 4}, svc.OnStockChanged); err != nil {
		return nil, err
	}
	return &component{
		handler: svc.Handler(),
		run:     svc.Run,
		checks:  map[string]server.Check{"database": db.PingContext},
	}, nil
}
