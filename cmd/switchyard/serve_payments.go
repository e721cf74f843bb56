package main

import (
	"context"

	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/internal/shop/payments"
	"github.com/switchyard/switchyard/rpc"
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
	path, handler := paymentsv1connect.NewPaymentServiceHandler(svc, rpc.HandlerOptions()...)
	return p.grpcComponent(services, db, rpc.GRPCService{Name: paymentsv1connect.PaymentServiceName, Path: path, Handler: handler}), nil
}
