package config

import (
	"fmt"
	"math"
	"strings"
)

// Traffic is the traffic `switchyard load` sends a platform when the binary brings
// no load of its own: requests drawn by weight from a mix, at a rate.
type Traffic struct {
	// Target receives the requests: "gateway" (the default when one is declared)
	// or the name of a service that faces clients.
	Target string `yaml:"target"`
	// Rate in requests per second [10].
	Rate float64 `yaml:"rate"`
	// Duration of a run [30s].
	Duration Duration `yaml:"duration"`
	// Mix are the requests sent, each drawn by its weight. Required.
	Mix []*Request `yaml:"mix"`
}

// Request is one kind of request in a load mix.
type Request struct {
	// Request is "METHOD /path" or "WS /path" (a stream read for Messages
	// messages); {name} parts of the path are filled with new ids. Required.
	Request string `yaml:"request"`
	// Weight relative to the other requests [1].
	Weight float64 `yaml:"weight"`
	// Body is the JSON body, a template ("{{id}}", "{{now}}") [none].
	Body any `yaml:"body"`
	// Messages a stream is read for before the client closes it [3].
	Messages int `yaml:"messages"`
}

func (c *Config) validateLoad(l *Traffic) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case l.Target == GatewayName && c.Gateway == nil:
		bad("load.target", "the platform declares no gateway; name the service that faces clients")
	case l.Target != GatewayName && c.Services[l.Target] == nil:
		bad("load.target", "no service %q is declared", l.Target)
	}
	if l.Rate <= 0 || l.Rate > 10000 || math.IsNaN(l.Rate) {
		bad("load.rate", "want requests per second above 0 and at most 10000, got %v", l.Rate)
	}
	if l.Duration.Std() <= 0 {
		bad("load.duration", "want a positive duration")
	}
	if len(l.Mix) == 0 {
		bad("load.mix", "declare at least one request")
	}
	for i, r := range l.Mix {
		key := fmt.Sprintf("load.mix.%d", i)
		if r == nil || r.Request == "" {
			bad(key, "request is required: \"METHOD /path\" or \"WS /path\"")
			continue
		}
		kind, _, path, err := ParseEndpoint(r.Request)
		switch {
		case err != nil:
			bad(key+".request", "%v", err)
			continue
		case kind == GRPC:
			bad(key+".request", "load sends REST requests and opens streams; %q is a gRPC method", r.Request)
			continue
		}
		if r.Weight < 0 || math.IsNaN(r.Weight) || math.IsInf(r.Weight, 0) {
			bad(key+".weight", "want a positive weight, got %v", r.Weight)
		}
		if r.Messages < 0 {
			bad(key+".messages", "must not be negative")
		}
		if l.Target == GatewayName && c.Gateway != nil && c.Gateway.Route(path) == nil {
			bad(key+".request", "no gateway route serves %s", path)
		}
	}
	return errs
}

// Route returns the route serving a public path (longest prefix), or nil.
func (g *Gateway) Route(path string) *Route {
	var best *Route
	for i := range g.Routes {
		r := &g.Routes[i]
		p := strings.TrimSuffix(r.Prefix, "/")
		if (path == p || strings.HasPrefix(path, p+"/")) && (best == nil || len(r.Prefix) > len(best.Prefix)) {
			best = r
		}
	}
	return best
}
