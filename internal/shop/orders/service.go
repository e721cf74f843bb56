package orders

import (
	"context"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/server"
)

// Platform is the orders service as the platform builds and runs it: users and catalog over
// REST (users also for the JWKS it verifies customers' tokens with), inventory and
// payments over gRPC, all through the rpc stack under the policies declared in
// switchyard.yaml; its events through the outbox; the order saga on its own
// database, running with the process's background work.
func Platform() platform.Service {
	return platform.Service{Name: "orders", Build: build, Sagas: func(declared *config.Service) ([]platform.SagaInfo, error) {
		settings, err := DecodeSettings(declared.Settings)
		if err != nil {
			return nil, err
		}
		d := (&Service{cfg: Config{Settings: settings}}).flow()
		return []platform.SagaInfo{{Name: d.Name, Deadline: d.Deadline, Steps: d.Describe()}}, nil
	}}
}

func build(ctx context.Context, p *platform.Process) (*platform.Component, error) {
	settings, err := DecodeSettings(p.Declared.Settings)
	if err != nil {
		return nil, err
	}
	db, err := p.Database(ctx, Migrations())
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, saga.Migrations(), p.Log); err != nil {
		return nil, err
	}
	ob, err := p.Outbox(ctx, db)
	if err != nil {
		return nil, err
	}
	deps := Deps{DB: db, Outbox: ob, Log: p.Log, Tracer: p.Tracing.Tracer("switchyard/saga"), Metrics: p.Metrics.Registry}
	users, err := p.Client(ctx, "users")
	if err != nil {
		return nil, err
	}
	catalog, err := p.Client(ctx, "catalog")
	if err != nil {
		return nil, err
	}
	inventory, err := p.Client(ctx, "inventory")
	if err != nil {
		return nil, err
	}
	payments, err := p.Client(ctx, "payments")
	if err != nil {
		return nil, err
	}
	if deps.Verifier, err = p.UserVerifier(ctx); err != nil {
		return nil, err
	}
	deps.Users, deps.UsersURL = users.HTTPClient(), users.BaseURL()
	deps.Catalog, deps.CatalogURL = catalog.HTTPClient(), catalog.BaseURL()
	deps.Inventory = inventoryv1connect.NewInventoryServiceClient(inventory.HTTPClient(), inventory.BaseURL(), connect.WithGRPC())
	deps.Payments = paymentsv1connect.NewPaymentServiceClient(payments.HTTPClient(), payments.BaseURL(), connect.WithGRPC())
	svc, err := New(ctx, Config{Settings: settings}, deps)
	if err != nil {
		return nil, err
	}
	p.Go(svc.Run)
	return &platform.Component{Handler: svc.Handler(), Checks: map[string]server.Check{"database": db.PingContext}}, nil
}
