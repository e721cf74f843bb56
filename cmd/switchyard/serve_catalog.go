package main

import (
	"context"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/server"
)

// buildCatalog is the catalog service's composition root: products, the
// availability view fed by inventory's events, and the product cache.
func buildCatalog(ctx context.Context, p *process) (*component, error) {
	db, err := p.openStore(ctx, catalog.Migrations())
	if err != nil {
		return nil, err
	}
	in, err := p.inbox(ctx, db)
	if err != nil {
		return nil, err
	}
	// The product cache: shared on Redis when one is configured, so one replica's
	// invalidation is every replica's; in process otherwise.
	var products cache.Cache
	if url := p.cfg.Redis.URL; url != "" {
		r, err := cache.NewRedis(ctx, url, "switchyard:catalog:")
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, func() { _ = r.Close() })
		products = r
		p.log.Info("product cache on Redis")
	}
	svc, err := catalog.New(ctx, catalog.Config{}, catalog.Deps{DB: db, Log: p.log, Inbox: in, Cache: products})
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
