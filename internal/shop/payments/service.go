package payments

import (
	"context"

	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/rpc"
)

// Platform is the payments service as the platform builds and runs it: a gRPC service on the
// simulated provider configured under services.payments.settings, open only to the
// services that declare it as a dependency, its payment events through the outbox.
func Platform() platform.Service {
	return platform.Service{Name: "payments", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		settings, err := Settings(p.Declared.Settings)
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
		svc, err := New(ctx, Config{}, Deps{DB: db, Outbox: ob, Provider: NewSimulator(settings), Log: p.Log})
		if err != nil {
			return nil, err
		}
		p.Log.Info("simulated payment provider", "decline_rate", settings.DeclineRate, "failure_rate", settings.FailureRate, "latency", settings.Latency.Std())
		path, handler := paymentsv1connect.NewPaymentServiceHandler(svc, rpc.HandlerOptions()...)
		return p.GRPC(db, rpc.GRPCService{Name: paymentsv1connect.PaymentServiceName, Path: path, Handler: handler})
	}}
}
