package catalog

import (
	"context"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/server"
)

// Platform is the catalog service as the platform builds and runs it: products, the
// availability view fed by inventory's events (an inbox-backed consumer), and the
// product cache — shared on Redis when REDIS_URL is set, so that one replica's
// invalidation is every replica's; in process otherwise.
func Platform() platform.Service {
	return platform.Service{Name: "catalog", Uses: []string{"redis"}, Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		db, err := p.Database(ctx, Migrations())
		if err != nil {
			return nil, err
		}
		in, err := p.Inbox(ctx, db)
		if err != nil {
			return nil, err
		}
		var products cache.Cache
		if url := p.Config.Redis.URL; url != "" {
			r, err := cache.NewRedis(ctx, url, "switchyard:catalog:")
			if err != nil {
				return nil, err
			}
			p.OnClose(func() { _ = r.Close() })
			products = r
			p.Log.Info("product cache on Redis")
		}
		svc, err := New(ctx, Config{}, Deps{DB: db, Log: p.Log, Inbox: in, Cache: products})
		if err != nil {
			return nil, err
		}
		if err := p.Consume(bus.Subscription{Types: []string{EventStockChanged}, Concurrency: 4}, svc.OnStockChanged); err != nil {
			return nil, err
		}
		p.Go(svc.Run)
		return &platform.Component{Handler: svc.Handler(), Checks: map[string]server.Check{"database": db.PingContext}}, nil
	}}
}
