package users

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/server"
)

// Platform is the users service as the platform builds and runs it: its database, the
// verifier of its callers' service tokens, and the key rotation in the background.
// Its iss and audience are those of the security.issuers entry naming it as its
// service; with none, it serves no provider and only its own endpoints trust its
// tokens.
func Platform() platform.Service {
	return platform.Service{Name: "users", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		cfg := Config{}
		for _, is := range p.Config.Security.Issuers {
			if is.Service == p.Name {
				cfg.Issuer, cfg.Audience = is.Issuer, is.Audience
			}
		}
		if cfg.Issuer == "" {
			// A platform that trusts no issuer: the JSON sign-in still works, for
			// the service's own endpoints, but no provider is served.
			p.Log.Warn("no entry of security.issuers names this service: its tokens carry iss switchyard, no other service trusts them, and no OpenID Connect provider is served")
		}
		var settings struct {
			// Clients of the OpenID Connect provider declared in switchyard.yaml.
			Clients []Client `yaml:"clients"`
		}
		if err := p.Settings(&settings); err != nil {
			return nil, err
		}
		for i, c := range settings.Clients {
			if err := c.Validate(); err != nil {
				return nil, p.Declared.Settings.Invalid(fmt.Sprintf("clients.%d", i), err.Error())
			}
		}
		cfg.Clients = settings.Clients
		db, err := p.Database(ctx, Migrations())
		if err != nil {
			return nil, err
		}
		callers, err := p.Callers()
		if err != nil {
			return nil, err
		}
		svc, err := New(ctx, cfg, Deps{DB: db, Callers: callers, Log: p.Log, Metrics: p.Metrics.Registry})
		if err != nil {
			return nil, err
		}
		p.Go(svc.Run)
		return &platform.Component{Handler: svc.Handler(), Checks: map[string]server.Check{"database": db.PingContext}}, nil
	}}
}
