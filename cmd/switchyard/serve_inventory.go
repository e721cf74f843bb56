package main

import (
	"context"

	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/internal/shop/inventory"
	"github.com/switchyard/switchyard/rpc"
)

// buildInventory is the inventory service's composition root: a gRPC service on the
// service's own port, open only to the services that declare it as a dependency.
func buildInventory(ctx context.Context, p *process) (*component, error) {
	settings, err := inventory.DecodeSettings(p.service.Settings)
	if err != nil {
		return nil, err
	}
	db, err := p.openStore(ctx, inventory.Migrations())
	if err != nil {
		return nil, err
	}
	_, services, err := p.identity()
	if err != nil {
		return nil, err
	}
	ob, err := p.outbox(ctx, db)
	if err != nil {
		return nil, err
	}
	svc, err := inventory.New(ctx, inventory.Config{Settings: settings}, db, ob, p.log)
	if err != nil {
		return nil, err
	}
	path, handler := inventoryv1connect.NewInventoryServiceHandler(svc, rpc.HandlerOptions()...)
	return p.grpcComponent(services, db, rpc.GRPCService{Name: inventoryv1connect.InventoryServiceName, Path: path, Handler: handler}), nil
}
