package config

import (
	"fmt"
	"regexp"
)

// ServiceTLS says how a service knows who calls it (security.service_tls and
// security.trust_domain in switchyard.yaml).
//
// With tokens, the default, each call carries a service token signed by the
// caller's identity key. With mutual, services call each other over TLS and each
// side presents a short-lived certificate naming its service as a SPIFFE ID,
// spiffe://<trust domain>/service/<name>, issued by the platform's CA: `switchyard
// up` makes the CA and the certificates, and on Kubernetes an operator provides
// them (a Secret per service, or cert-manager). Either way a callee admits exactly
// the services that declare it as a dependency.
type ServiceTLS struct {
	// Mode is tokens (a service token with every call) or mutual (mutual TLS
	// between services, identities in the certificates) [tokens].
	Mode string `yaml:"service_tls"`
	// TrustDomain names the platform in its services' SPIFFE IDs: lower-case
	// letters, digits, dots, dashes and underscores [switchyard.local].
	TrustDomain string `yaml:"trust_domain"`
}

// The modes of security.service_tls.
const (
	ServiceTokens = "tokens"
	MutualTLS     = "mutual"
)

// DefaultTrustDomain is the trust domain of a platform that names none.
const DefaultTrustDomain = "switchyard.local"

// Mutual reports whether services call each other over mutual TLS.
func (t ServiceTLS) Mutual() bool { return t.Mode == MutualTLS }

// Domain is the trust domain of the services' SPIFFE IDs.
func (t ServiceTLS) Domain() string {
	if t.TrustDomain == "" {
		return DefaultTrustDomain
	}
	return t.TrustDomain
}

// trustDomain is what SPIFFE allows in a trust domain name.
var trustDomain = regexp.MustCompile(`^[a-z0-9._-]{1,255}$`)

func (t ServiceTLS) validate() Errors {
	var errs Errors
	switch t.Mode {
	case "", ServiceTokens, MutualTLS:
	default:
		errs = append(errs, &Error{Key: "security.service_tls", Msg: fmt.Sprintf("want %s or %s, got %q", ServiceTokens, MutualTLS, t.Mode)})
	}
	if t.TrustDomain != "" && !trustDomain.MatchString(t.TrustDomain) {
		errs = append(errs, &Error{Key: "security.trust_domain", Msg: fmt.Sprintf("want lower-case letters, digits, dots, dashes and underscores, got %q", t.TrustDomain)})
	}
	return errs
}
