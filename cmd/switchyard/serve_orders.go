package main

import (
	"context"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/server"
)

// buildOrders is the orders service's composition root: users and catalog over
// REST (users also for the JWKS it verifies customers' tokens with), inventory and
// payments over gRPC, all through the rpc stack under the policies declared in
// switchyard.yaml; the order saga runs with the process's background work.
func buildOrders(ctx context.Context, p *process) (*component, error) {
	settings, err := orders.DecodeSettings(p.service.Settings)
	if err != nil {
		return nil, err
	}
	db, err := p.openStore(ctx, orders.Migrations())
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, saga.Migrations(), p.log); err != nil {
		return nil, err
	}
	ob, err := p.outbox(ctx, db)
	if err != nil {
		return nil, err
	}
	clients := map[string]*rpc.Client{}
	for _, dep := range []string{"users", "catalog", "inventory", "payments"} {
		c, err := p.client(ctx, dep)
		if err != nil {
			return nil, err
		}
		clients[dep] = c
	}
	users := clients["users"]
	verifier, err := customerVerifier(users)
	if err != nil {
		return nil, err
	}
	inventory, payments := clients["inventory"], clients["payments"]
	svc, err := orders.New(orders.Config{Settings: settings}, orders.Deps{
		DB:         db,
		Outbox:     ob,
		Log:        p.log,
		Tracer:     p.tracing.Tracer("switchyard/saga"),
		Metrics:    p.metrics.Registry,
		Verifier:   verifier,
		Users:      users.HTTPClient(),
		UsersURL:   users.BaseURL(),
		Catalog:    clients["catalog"].HTTPClient(),
		CatalogURL: clients["catalog"].BaseURL(),
		Inventory:  inventoryv1connect.NewInventoryServiceClient(inventory.HTTPClient(), inventory.BaseURL(), connect.WithGRPC()),
		Payments:   paymentsv1connect.NewPaymentServiceClient(payments.HTTPClient(), payments.BaseURL(), connect.WithGRPC()),
	})
	if err != nil {
		return nil, err
	}
	return &component{
		handler: svc.Handler(),
		run:     svc.Run,
		checks:  map[string]server.Check{"database": db.PingContext},
	}, nil
}
