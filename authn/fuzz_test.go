package authn_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/authn"
)

// The verifier, fed anything — a signed token mutated, or bytes from nowhere — never
// panics, and whatever it accepts says exactly what the signed token said.
func FuzzVerifierAcceptsOnlyWhatWasSigned(f *testing.F) {
	k := newKey(f, "k1")
	v := verifier(f, authn.StaticKeys{"k1": k.pub})
	good := sign(f, k, claims(nil), nil)
	want, err := v.Verify(context.Background(), good)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		good, "", ".", "..", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		`eyJhbGciOiJub25lIn0.` + parts[1] + ".", good + "=", strings.Repeat("A", 5000),
		b64(map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"}) + "." + parts[1] + "." + parts[2],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			return
		}
		if p.Subject != want.Subject || p.TokenID != want.TokenID || strings.Join(p.Roles, ",") != strings.Join(want.Roles, ",") {
			t.Fatalf("accepted %q as %+v; only %+v was signed", token, p, want)
		}
	})
}

// The Authorization header's parser, fed any value, never panics and returns a
// token only from a Bearer credential, never with spaces in it (writing this target
// showed that "Bearer a b" gave "a b"; BearerToken now refuses it).
func FuzzBearerHeader(f *testing.F) {
	for _, seed := range []string{"Bearer abc", "bearer abc", "Bearer  abc", "Basic dXNlcg==", "Bearer", "Bearer ", "Bearer a b", "Bearer\tabc", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{header}
		tok, err := authn.BearerToken(r)
		if err != nil || tok == "" {
			return
		}
		if strings.ContainsAny(tok, " \t\r\n\x00") {
			t.Fatalf("%q: token %q holds whitespace", header, tok)
		}
		if len(header) < 7 || !strings.EqualFold(header[:6], "bearer") {
			t.Fatalf("%q: a token from a credential that is not Bearer", header)
		}
	})
}
