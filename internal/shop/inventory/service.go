package inventory

import (
	"context"

	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/rpc"
)

// Platform is the inventory service as the platform builds and runs it: a gRPC service on the
// service's own port, open only to the services that declare it as a dependency,
// its stock events through the outbox.
func Platform() platform.Service {
	return platform.Service{Name: "inventory", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		settings, err := DecodeSettings(p.Declared.Settings)
		if err != nil {
			return nil, err
		}
		db, err := p.Database(ctx, Migrations())
		if err != nil {
			return nil, err
		}
		ob, err := p.Outbox(ctx, db)
		if err != nil {
			return nil, err
		}
		svc, err := New(ctx, Config{Settings: settings}, Deps{DB: db, Outbox: ob, Log: p.Log})
		if err != nil {
			return nil, err
		}
		path, handler := inventoryv1connect.NewInventoryServiceHandler(svc, rpc.HandlerOptions()...)
		return p.GRPC(db, rpc.GRPCService{Name: inventoryv1connect.InventoryServiceName, Path: path, Handler: handler})
	}}
}
