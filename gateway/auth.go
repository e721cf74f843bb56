package gateway

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
)

// maxAuthorization caps the Authorization header: a token is far smaller, and
// anything larger is refused with 401 before any parsing.
const maxAuthorization = authn.MaxTokenBytes + len("Bearer ")

// authenticate verifies the caller as rt asks. It returns nil without error for an
// anonymous caller on a route that allows one.
func (g *Gateway) authenticate(r *http.Request, rt *route) (*authn.Principal, error) {
	if rt.Auth == AuthNone {
		return nil, nil
	}
	token, err := authn.BearerToken(r)
	if err != nil {
		return nil, err
	}
	if token == "" && r.Header.Get("Upgrade") != "" {
		// Browsers cannot set headers on a WebSocket handshake; the token comes in the
		// query instead (and the access log never records queries).
		token = r.URL.Query().Get("access_token")
	}
	if token == "" {
		if rt.Auth == AuthOptional {
			return nil, nil
		}
		return nil, problem.New(problem.Unauthenticated, "this route needs an access token: Authorization: Bearer <token>")
	}
	if g.cfg.Verifier == nil {
		return nil, problem.New(problem.Unauthenticated, "the gateway cannot verify tokens")
	}
	p, err := g.cfg.Verifier.Verify(r.Context(), token)
	if err != nil {
		// The verifier's detail is generic by design: it never echoes the token.
		return nil, err
	}
	if rt.Auth == AuthAdmin && !p.HasRole("admin") {
		return nil, problem.New(problem.Forbidden, "this route is for administrators")
	}
	if len(rt.Issuers) > 0 && !slices.Contains(rt.Issuers, p.Issuer) {
		return nil, problem.New(problem.Forbidden, "this route does not accept tokens of this issuer")
	}
	if len(rt.Roles) > 0 && !slices.ContainsFunc(rt.Roles, p.HasRole) {
		return nil, problem.New(problem.Forbidden, "this route needs one of the roles %s", strings.Join(rt.Roles, ", "))
	}
	for _, sc := range rt.Scopes {
		if !p.HasScope(sc) {
			return nil, &problem.Error{Kind: problem.Forbidden, Detail: "this route needs the scopes " + strings.Join(rt.Scopes, " "),
				Err: errInsufficientScope{scopes: rt.Scopes}}
		}
	}
	return p, nil
}

// errInsufficientScope marks a refusal for missing scopes, so that the answer
// carries the challenge naming them.
type errInsufficientScope struct{ scopes []string }

func (e errInsufficientScope) Error() string { return "insufficient scope" }

// challenge returns the WWW-Authenticate value for a refusal by authenticate.
func challenge(err error) string {
	var scope errInsufficientScope
	if errors.As(err, &scope) {
		return `Bearer error="insufficient_scope", scope="` + strings.Join(scope.scopes, " ") + `"`
	}
	if problem.KindOf(err) == problem.Unauthenticated {
		return `Bearer error="invalid_token"`
	}
	return ""
}
