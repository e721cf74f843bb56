package main

import (
	"context"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/server"
)

// buildOrders is the orders service's composition root: users over REST (also for
// the JWKS it verifies customers' tokens with), inventory over gRPC, both through
// the rpc stack under the policies declared in switchyard.yaml.
func buildOrders(ctx context.Context, p *process) (*component, error) {
	db, err := p.openStore(ctx, orders.Migrations())
	if err != nil {
		return nil, err
	}
	users, err := p.client(ctx, "users")
	if err != nil {
		return nil, err
	}
	inventory, err := p.client(ctx, "inventory")
	if err != nil {
		return nil, err
	}
	verifier, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard"},
		authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: users.BaseURL() + "/.well-known/jwks.json", Client: users.HTTPClient()}))
	if err != nil {
		return nil, err
	}
	svc, err := orders.New(orders.Config{}, orders.Deps{
		DB:        db,
		Log:       p.log,
		Verifier:  verifier,
		Users:     users.HTTPClient(),
		UsersURL:  users.BaseURL(),
		Inventory: inventoryv1connect.NewInventoryServiceClient(inventory.HTTPClient(), inventory.BaseURL(), connect.WithGRPC()),
	})
	if err != nil {
		return nil, err
	}
	return &component{
		handler: svc.Handler(),
		checks:  map[string]server.Check{"database": db.PingContext},
	}, nil
}
