package platform

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/rpc"
)

// UserVerifier returns the verifier of end users' access tokens: it trusts every
// issuer of switchyard.yaml's security.issuers, each by its own rules. An issuer
// that is a declared service has its keys fetched from that service through its
// client — discovery, policies and the service token included — so the process
// must declare the service as a dependency; a provider's keys come from the JWKS
// its discovery document names. Made once per process.
func (p *Process) UserVerifier(ctx context.Context) (*authn.Verifier, error) {
	return p.userVerifier(func(service string) (*rpc.Client, error) { return p.Client(ctx, service) })
}

func (p *Process) userVerifier(clients Clients) (*authn.Verifier, error) {
	if p.users != nil {
		return p.users, nil
	}
	declared := p.Config.Security.Issuers
	if len(declared) == 0 {
		return nil, errors.New("switchyard.yaml declares no issuer of access tokens under security.issuers")
	}
	var issuers []authn.Issuer
	for _, is := range declared {
		var keys authn.KeySource
		switch {
		case is.Service != "":
			c, err := clients(is.Service)
			if err != nil {
				return nil, fmt.Errorf("issuer %s: its keys come from %s: %w", is.Name, is.Service, err)
			}
			keys = authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: c.BaseURL() + "/.well-known/jwks.json", Client: c.HTTPClient()})
		default:
			keys = authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: is.JWKS, Discovery: is.Discovery, Issuer: is.Issuer})
		}
		issuers = append(issuers, authn.Issuer{Issuer: is.Issuer, Audience: is.Audience, Keys: keys,
			Algorithms: is.Algorithms, Types: is.TokenTypes, RolesClaim: is.RolesClaim})
	}
	v, err := authn.NewVerifier(authn.VerifierConfig{Issuers: issuers}, nil)
	if err != nil {
		return nil, err
	}
	p.users = v
	return v, nil
}

// issuersNamed returns the iss of each issuer named.
func (p *Process) issuersNamed(names []string) []string {
	var out []string
	for _, name := range names {
		for _, is := range p.Config.Security.Issuers {
			if is.Name == name {
				out = append(out, is.Issuer)
			}
		}
	}
	return out
}
