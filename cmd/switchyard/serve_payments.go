package main

import (
	"context"
	"net/http"

	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/internal/shop/payments"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/telemetry"
)

// buildPayments is the payments service's composition root: a gRPC service on the
// simulated provider configured under services.payments.settings, open only to the
// services that declare it as a dependency.
func buildPayments(ctx context.Context, p *process) (*component, error) {
	settings, err := payments.Settings(p.service.Settings)
	if err != nil {
		return nil, err
	}
	db, err := p.openStore(ctx, payments.Migrations())
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
	svc, err := payments.New(payments.Config{}, db, ob, payments.NewSimulator(settings), p.log)
	if err != nil {
		return nil, err
	}
	p.log.Info("simulated payment provider", "decline_rate", settings.DeclineRate, "failure_rate", settings.FailureRate, "latency", settings.Latency.Std())
	problems := problem.Writer{Log: p.log, RequestID: telemetry.RequestID}
	mux := http.NewServeMux()
	path, handler := paymentsv1connect.NewPaymentServiceHandler(svc, rpc.HandlerOptions()...)
	health := rpc.MountGRPC(mux, func(h http.Handler) http.Handler { return services.RequireService(rpc.WriteError(problems), h) },
		rpc.GRPCService{Name: paymentsv1connect.PaymentServiceName, Path: path, Handler: handler})
	return &component{
		handler: mux,
		checks:  map[string]server.Check{"database": db.PingContext},
		onDrain: func() { health.SetServing(false) },
	}, nil
}
