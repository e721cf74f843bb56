package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/switchyard/switchyard/testkit/idp"
)

// The shop's sign-in as a third-party app does it, through the gateway under
// `up`: golang.org/x/oauth2 with PKCE, coreos/go-oidc verifying the ID token, a
// machine client with client credentials, and a second issuer (a provider of
// someone else's, RS256) whose tokens open the routes its audience and scopes
// allow — in the gateway and in the services, which verify every token again.
func TestTheShopSignsInThirdPartyAppsAndTrustsASecondIssuer(t *testing.T) {
	partners := idp.Start(t, "RS256")
	gwAddr := freePort(t)
	platform := strings.Replace(fullPlatform, "gateway:\n  listen: 127.0.0.1:0", "gateway:\n  listen: "+gwAddr, 1)
	platform = strings.Replace(platform, "      service: users\n      audience: switchyard\n", `      service: users
      audience: switchyard
    - name: partners
      issuer: `+partners.Issuer()+`
      discovery: `+partners.Discovery()+`
      audience: shop-api
      algorithms: [RS256]
      token_types: [JWT]
      roles_claim: realm_access.roles
`, 1)
	platform = strings.Replace(platform, "  routes:\n", `  routes:
    - prefix: /api/v1/partner/products
      path: /v1/products
      service: catalog
      auth: required
      scopes: [catalog:read]
      issuers: [partners]
`, 1)
	issuer := "http://" + gwAddr + "/oidc"
	s := startUp(t, platform, "ISSUER_SHOP="+issuer)
	gw := "http://" + gwAddr
	ctx := context.Background()

	if out, err := execIn(s.dir, "client", "add", "e2e-app", "--name", "E2E app", "--public", "--first-party",
		"--grant", "authorization_code", "--grant", "refresh_token", "--redirect", "http://127.0.0.1:5999/cb").CombinedOutput(); err != nil {
		t.Fatalf("client add: %v %s", err, out)
	}
	out, err := execIn(s.dir, "client", "add", "stock-sync", "--name", "Stock sync", "--scope", "catalog:read").CombinedOutput()
	if err != nil {
		t.Fatalf("client add: %v %s", err, out)
	}
	secret := regexp.MustCompile(`client_secret: (\S+)`).FindSubmatch(out)
	if secret == nil {
		t.Fatalf("no secret printed:\n%s", out)
	}
	if resp, m := exchange(t, http.DefaultClient, "POST", gw+"/api/v1/auth/register", "", `{"email":"eve@example.com","password":"correct-horse-battery","name":"Eve"}`, nil); resp.StatusCode != 201 {
		t.Fatalf("register: %d %v", resp.StatusCode, m)
	}

	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	app := &oauth2.Config{ClientID: "e2e-app", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:5999/cb", Scopes: []string{"openid", "email", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	code := browserSignIn(t, gw, app.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "eve@example.com", "correct-horse-battery")
	tok, err := app.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if _, err := provider.Verifier(&gooidc.Config{ClientID: "e2e-app"}).Verify(ctx, rawID); err != nil {
		t.Fatalf("ID token: %v", err)
	}

	machine, err := (&clientcredentials.Config{ClientID: "stock-sync", ClientSecret: string(secret[1]), TokenURL: provider.Endpoint().TokenURL, Scopes: []string{"catalog:read"}}).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reader := partners.Token(idp.Grant{Subject: "kc-7", Audience: []string{"shop-api"}, Scopes: []string{"catalog:read"}})
	noScope := partners.Token(idp.Grant{Subject: "kc-8", Audience: []string{"shop-api"}})
	otherAudience := partners.Token(idp.Grant{Subject: "kc-9", Audience: []string{"account"}, Scopes: []string{"catalog:read"}})
	for _, c := range []struct {
		name, path, token string
		want              int
	}{
		{"the app's user, own orders", "/api/v1/orders", tok.AccessToken, 200},
		{"the partner's user, own orders (orders verifies the partner too)", "/api/v1/orders", reader, 200},
		{"the partner's user with the scope", "/api/v1/partner/products", reader, 200},
		{"the partner's user without it", "/api/v1/partner/products", noScope, 403},
		{"a shop token on the partners' route", "/api/v1/partner/products", machine.AccessToken, 403},
		{"a partner token for another audience", "/api/v1/orders", otherAudience, 401},
	} {
		resp, m := exchange(t, http.DefaultClient, "GET", gw+c.path, c.token, "", nil)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %v, want %d", c.name, resp.StatusCode, m, c.want)
		}
	}
}

// browserSignIn follows authorize through the sign-in page and returns the code.
func browserSignIn(t *testing.T, gw, authorize, email, password string) string {
	t.Helper()
	nav := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	at := authorize
	for range 8 {
		resp, err := nav.Get(at)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := regexp.MustCompile(`name="authRequestID" value="([^"]+)"`).FindStringSubmatch(string(body)); m != nil {
			resp, err = nav.PostForm(gw+"/oidc/login", url.Values{"authRequestID": {m[1]}, "email": {email}, "password": {password}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %d, no redirect\n%s", at, resp.StatusCode, body)
		}
		if c := loc.Query().Get("code"); c != "" {
			return c
		}
		at = loc.String()
	}
	t.Fatal("too many redirects")
	return ""
}
