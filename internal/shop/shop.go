// Package shop is the reference e-commerce platform as one application: its
// services (users, catalog, orders, inventory, payments, notifications and the
// gateway) as the platform builds them, its built-in switchyard.yaml, its event
// schemas, the invariants `check` holds it to, and its own commands — `load`
// (customers ordering at a rate) and `grant` (make an administrator). The
// switchyard binary is cli.Main(shop.App()).
//
// It composes the shop's services, as a binary's main does for any application;
// the services themselves never import each other.
package shop

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/api/openapi"
	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/internal/shop/edge"
	"github.com/switchyard/switchyard/internal/shop/inventory"
	"github.com/switchyard/switchyard/internal/shop/notifications"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/internal/shop/payments"
	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/internal/web"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/telemetry"
)

// Services are the shop's services, the gateway included, as the platform builds
// them: the one wiring `switchyard serve`, `switchyard up` and the tests use.
func Services() []platform.Service {
	return []platform.Service{
		users.Platform(), catalog.Platform(), inventory.Platform(), payments.Platform(), orders.Platform(), notifications.Platform(),
		Gateway(),
	}
}

// App is the shop's command line: the switchyard binary.
func App() cli.App {
	return cli.App{
		Name:       "switchyard",
		Config:     switchyard.DefaultConfig,
		ConfigName: switchyard.DefaultConfigName,
		Events:     events.Schemas,
		Services:   Services(),
		Check:      Check,
		Welcome:    welcome,
		Design: cli.DesignNotes{
			Identity:    "users is an OpenID Connect provider (authorization code with PKCE, refresh rotation, client credentials); its EdDSA access tokens (`typ` at+jwt) are verified by every service against its JWKS, issuer and audience checked; other issuers are declared under security.issuers",
			Gateway:     "`GET /api/v1/orders/{id}/summary` is answered by the gateway itself from orders, payments, catalog and notifications in parallel; the storefront is served at `/`.",
			RealTime:    "notifications keeps a numbered log per customer and streams it to the customer alone; a client resumes from the last number it saw.",
			Consistency: "Read models (catalog's availability, notifications) are eventually consistent, fed by events through the inbox.",
			Schemas:     "api/events",
		},
		Commands: []cli.Command{
			{Name: "load", Summary: "drive the shop like its customers do (register, browse, order, some cards declining) at a rate, and summarise; with --request, or a platform declaring load:, send that traffic instead",
				Usage: "load [--rate 100] [--duration 60s] [--customers 20] [--declines 0.1] [--retry-window 10s] [--timeline file] [--json] [--config path]", Run: cmdLoad},
			{Name: "grant", Summary: "give a user a role (e.g. admin, for the gateway's admin routes); they sign in again to carry it",
				Usage: "grant <email> <role> [--config path]", Run: cmdGrant},
			{Name: "client", Summary: "register an OAuth client of the shop's OpenID Connect provider (a machine client by default) and print its secret once",
				Usage: "client add <id> --name <name> [--grant g]... [--scope s]... [--redirect uri]... [--public] [--native] [--first-party] [--print-only] [--config path]", Run: cmdClient},
		},
	}
}

// Gateway is the shop's gateway: the platform's, verifying customers against the
// users JWKS, with the shop's order summary (gathered from orders, payments,
// catalog and notifications), its storefront at / and its public OpenAPI document.
func Gateway() platform.Service {
	doc, _ := openapi.Files.ReadFile("gateway.yaml")
	return platform.Gateway(platform.GatewayOptions{
		OpenAPI: doc,
		Routes: func(_ context.Context, p *platform.Process, clients platform.Clients) ([]gateway.Route, error) {
			routes := []gateway.Route{}
			for pattern, h := range web.Storefront() {
				routes = append(routes, gateway.Route{Pattern: pattern, Auth: gateway.AuthNone, Handler: h})
			}
			if _, ok := p.Declared.Dependencies["payments"]; !ok {
				return routes, nil // the order summary needs the platform's payments
			}
			summary := &edge.Summary{Problems: problem.Writer{Log: p.Log, RequestID: telemetry.RequestID}}
			for name, target := range map[string]**http.Client{"orders": &summary.Orders, "catalog": &summary.Catalog, "notifications": &summary.Notifications} {
				c, err := clients(name)
				if err != nil {
					return nil, err
				}
				*target = c.HTTPClient()
			}
			summary.OrdersURL, summary.CatalogURL, summary.NotificationsURL = "http://orders", "http://catalog", "http://notifications"
			pay, err := clients("payments")
			if err != nil {
				return nil, err
			}
			summary.Payments = paymentsv1connect.NewPaymentServiceClient(pay.HTTPClient(), pay.BaseURL(), connect.WithGRPC())
			return append(routes, summary.Route()), nil
		},
	})
}

// welcome is what up prints under its ready table: where customers start, and
// how one becomes an administrator (of the dashboard and the admin API).
func welcome(urls map[string]string) []string {
	gw, ok := urls["gateway"]
	if !ok {
		return nil
	}
	return []string{
		"storefront " + gw + "/ (sign up, browse, order)",
		"admin      sign up in the storefront, then: switchyard grant <email> admin, and sign in again",
	}
}
