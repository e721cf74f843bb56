package users_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
)

const (
	storefrontRedirect = "http://127.0.0.1:5999/signed-in"
	partnerRedirect    = "https://partner.example/callback"
)

// op is the users service as an OpenID Connect provider on a real listener.
type op struct {
	*harness
	issuer string
	db     *store.DB
}

func startOP(t *testing.T, dbURL string) *op {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/oidc"
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: dbURL, Migrations: users.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := users.New(ctx, users.Config{Issuer: issuer, Audience: "switchyard", Clients: []users.Client{
		{ID: "storefront", Name: "Switchyard Shop", Redirects: []string{storefrontRedirect}, Grants: []string{users.GrantCode, users.GrantRefresh}, FirstParty: true},
		{ID: "partner-app", Name: "Partner App", Redirects: []string{partnerRedirect}, Grants: []string{users.GrantCode}, Scopes: []string{"orders:read"}},
	}}, users.Deps{DB: db, Log: telemetry.Discard(),
		Callers: authn.NewServiceVerifier("users", authn.Bundle{"orders": ordersIdentity.Public()}, []string{"orders"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(svc.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	h := &harness{t: t, client: http.DefaultClient, url: dbURL, svc: svc, db: db, base: srv.URL}
	return &op{harness: h, issuer: issuer, db: db}
}

// browser follows nothing by itself: each redirect is looked at.
var browser = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

var formID = regexp.MustCompile(`name="authRequestID" value="([^"]+)"`)

// signIn walks a browser through authorize, the sign-in page and (if shown)
// consent, and returns where the provider sent it at the end.
func (o *op) signIn(t *testing.T, authorize, email, password string, consent string) *url.URL {
	t.Helper()
	at := authorize
	for range 10 {
		resp, err := browser.Get(at)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther:
			loc, _ := resp.Location()
			if !strings.HasPrefix(loc.String(), o.base) {
				return loc // off to the client
			}
			at = loc.String()
		case resp.StatusCode == http.StatusOK && strings.Contains(string(body), `name="password"`):
			m := formID.FindStringSubmatch(string(body))
			if m == nil {
				t.Fatalf("sign-in page without its request:\n%s", body)
			}
			resp, body = o.post(t, "/oidc/login", url.Values{"authRequestID": {m[1]}, "email": {email}, "password": {password}})
			if strings.Contains(string(body), `name="decision"`) {
				resp, body = o.post(t, "/oidc/consent", url.Values{"authRequestID": {m[1]}, "decision": {consent}})
			}
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("after sign-in: %d\n%s", resp.StatusCode, body)
			}
			loc, _ := resp.Location()
			if !strings.HasPrefix(loc.String(), o.base) {
				return loc // straight back to the client (a denial)
			}
			at = loc.String()
		default:
			t.Fatalf("GET %s: %d\n%s", at, resp.StatusCode, body)
		}
	}
	t.Fatal("too many redirects")
	return nil
}

func (o *op) post(t *testing.T, path string, form url.Values) (*http.Response, []byte) {
	t.Helper()
	resp, err := browser.PostForm(o.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (o *op) oauth(t *testing.T, ctx context.Context, clientID, redirect string, scopes ...string) (*oauth2.Config, *gooidc.Provider) {
	t.Helper()
	p, err := gooidc.NewProvider(ctx, o.issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{ClientID: clientID, Endpoint: p.Endpoint(), RedirectURL: redirect, Scopes: scopes}, p
}

// TestAThirdPartyOAuthClientSignsInWithPKCE drives the provider with
// golang.org/x/oauth2 and verifies its ID token with coreos/go-oidc: neither was
// written here.
func TestAThirdPartyOAuthClientSignsInWithPKCE(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, dbURL string) {
		o := startOP(t, dbURL)
		userID, _, _ := o.signUp("ada@example.com")
		ctx := context.Background()
		cfg, provider := o.oauth(t, ctx, "storefront", storefrontRedirect, gooidc.ScopeOpenID, "email", "profile", gooidc.ScopeOfflineAccess)

		verifier := oauth2.GenerateVerifier()
		back := o.signIn(t, cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("n-1")), "ada@example.com", goodPassword, "")
		if back.Query().Get("state") != "st-1" || back.Query().Get("code") == "" {
			t.Fatalf("redirected to %s", back)
		}
		tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idToken, err := provider.Verifier(&gooidc.Config{ClientID: "storefront"}).Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("go-oidc refuses the ID token: %v", err)
		}
		if idToken.Subject != userID || idToken.Nonce != "n-1" {
			t.Errorf("ID token sub %q nonce %q", idToken.Subject, idToken.Nonce)
		}
		if err := idToken.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}

		// The access token is an RFC 9068 token every service verifies offline.
		services, err := authn.NewVerifier(authn.VerifierConfig{Issuers: []authn.Issuer{{Issuer: o.issuer, Audience: "switchyard",
			Keys: authn.NewRemoteKeys(authn.RemoteKeysConfig{Discovery: o.issuer + "/.well-known/openid-configuration", Issuer: o.issuer})}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := services.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("services refuse the access token: %v", err)
		}
		if p.Subject != userID || p.ClientID != "storefront" || !p.HasScope("email") {
			t.Errorf("principal %+v", p)
		}
		// The ID token is no access token, whatever its audience.
		if _, err := services.Verify(ctx, rawID); err == nil {
			t.Error("an ID token was accepted as an access token")
		}

		info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		if info.Subject != userID || info.Email != "ada@example.com" || info.EmailVerified {
			t.Errorf("userinfo %+v", info)
		}

		// Refresh rotates; the used refresh token, presented again, revokes the family.
		first := tok.RefreshToken
		refreshed, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: first}).Token()
		if err != nil {
			t.Fatal(err)
		}
		if refreshed.RefreshToken == "" || refreshed.RefreshToken == first {
			t.Fatalf("refresh did not rotate: %q", refreshed.RefreshToken)
		}
		if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: first}).Token(); oauthError(err) != "invalid_grant" {
			t.Errorf("reused refresh token: %v, want invalid_grant", err)
		}
		if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); oauthError(err) != "invalid_grant" {
			t.Errorf("the family's newest token after a reuse: %v, want invalid_grant", err)
		}
	})
}

func oauthError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func TestAMachineClientGetsATokenForItsScopesOnly(t *testing.T) {
	t.Parallel()
	o := startOP(t, storetest.Targets(t)[0].URL)
	ctx := context.Background()
	secret, err := users.RegisterClient(ctx, o.db, users.Client{ID: "stock-sync", Name: "Stock sync", Grants: []string{users.GrantClientCredentials}, Scopes: []string{"inventory:write"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	cc := clientcredentials.Config{ClientID: "stock-sync", ClientSecret: secret, TokenURL: o.issuer + "/oauth/token", Scopes: []string{"inventory:write"}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := authn.NewVerifier(authn.VerifierConfig{Issuers: []authn.Issuer{{Issuer: o.issuer, Audience: "switchyard",
		Keys: authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: o.base + "/.well-known/jwks.json"})}}}, nil)
	p, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "stock-sync" || !p.HasScope("inventory:write") || len(p.Roles) != 0 {
		t.Errorf("principal %+v", p)
	}
	// Introspection (RFC 7662) says so too, and after revocation (RFC 7009) it is inactive.
	active := func() bool {
		req, _ := http.NewRequest(http.MethodPost, o.issuer+"/oauth/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("stock-sync", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			Active bool   `json:"active"`
			Scope  string `json:"scope"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return r.Active && r.Scope == "inventory:write"
	}
	if !active() {
		t.Fatal("introspection: the fresh token is not active")
	}
	req, _ := http.NewRequest(http.MethodPost, o.issuer+"/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("stock-sync", secret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	if active() {
		t.Error("a revoked token is still active")
	}

	for name, c := range map[string]clientcredentials.Config{
		"a scope not granted": {ClientID: "stock-sync", ClientSecret: secret, TokenURL: cc.TokenURL, Scopes: []string{"orders:write"}},
		"a wrong secret":      {ClientID: "stock-sync", ClientSecret: "cs_wrong", TokenURL: cc.TokenURL},
		"an unknown client":   {ClientID: "nobody", ClientSecret: secret, TokenURL: cc.TokenURL},
	} {
		_, err := c.Token(ctx)
		want := map[string]string{"a scope not granted": "invalid_scope"}[name]
		if want == "" {
			want = "invalid_client"
		}
		if got := oauthError(err); got != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
}

func TestAThirdPartyClientAsksForConsentOnce(t *testing.T) {
	t.Parallel()
	o := startOP(t, storetest.Targets(t)[0].URL)
	o.signUp("bea@example.com")
	ctx := context.Background()
	cfg, _ := o.oauth(t, ctx, "partner-app", partnerRedirect, gooidc.ScopeOpenID, "orders:read")
	// The partner is a public client too: PKCE.
	v := oauth2.GenerateVerifier()
	denied := o.signIn(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "bea@example.com", goodPassword, "deny")
	if denied.Query().Get("error") != "access_denied" || denied.Query().Get("code") != "" {
		t.Fatalf("denied consent went to %s", denied)
	}
	allowed := o.signIn(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "bea@example.com", goodPassword, "allow")
	if allowed.Query().Get("code") == "" {
		t.Fatalf("allowed consent went to %s", allowed)
	}
	// Asked once: the next sign-in goes straight back ("" would fail if asked again).
	again := o.signIn(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "bea@example.com", goodPassword, "")
	if again.Query().Get("code") == "" {
		t.Fatalf("a second sign-in went to %s", again)
	}
}

// TestMalformedAuthorizationAndTokenRequestsGetTheErrorsTheRFCsName covers RFC 6749
// sections 4.1.2.1 and 5.2 and RFC 7636 section 4.4.1.
func TestMalformedAuthorizationAndTokenRequestsGetTheErrorsTheRFCsName(t *testing.T) {
	t.Parallel()
	o := startOP(t, storetest.Targets(t)[0].URL)
	o.signUp("cy@example.com")
	ctx := context.Background()
	cfg, _ := o.oauth(t, ctx, "storefront", storefrontRedirect, gooidc.ScopeOpenID)
	verifier := oauth2.GenerateVerifier()

	authorize := func(q url.Values) (*http.Response, string) {
		resp, err := browser.Get(o.issuer + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	good := func(mod func(url.Values)) url.Values {
		q := url.Values{"client_id": {"storefront"}, "redirect_uri": {storefrontRedirect}, "response_type": {"code"}, "scope": {"openid offline_access"},
			"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		if mod != nil {
			mod(q)
		}
		return q
	}
	// Errors sent back to a redirect URI that was verified.
	redirected := map[string]struct {
		q    url.Values
		want string
	}{
		"no PKCE from a public client":                      {good(func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }), "invalid_request"},
		"plain PKCE":                                        {good(func(q url.Values) { q.Set("code_challenge_method", "plain") }), "invalid_request"},
		"an unknown PKCE method":                            {good(func(q url.Values) { q.Set("code_challenge_method", "S512") }), "invalid_request"},
		"response_type token, which the client may not use": {good(func(q url.Values) { q.Set("response_type", "token") }), "unauthorized_client"},
	}
	for name, c := range redirected {
		resp, body := authorize(c.q)
		loc, _ := resp.Location()
		if loc == nil || !strings.HasPrefix(loc.String(), storefrontRedirect) || loc.Query().Get("error") != c.want {
			t.Errorf("%s: %d %v %s, want a redirect with error=%s", name, resp.StatusCode, loc, body, c.want)
		}
	}
	// Errors never sent to an unverified redirect URI (section 4.1.2.1).
	for name, q := range map[string]url.Values{
		"a redirect URI not registered": good(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/steal") }),
		"a redirect URI with a suffix":  good(func(q url.Values) { q.Set("redirect_uri", storefrontRedirect+"/../x") }),
		"no redirect URI":               good(func(q url.Values) { q.Del("redirect_uri") }),
		"an unknown client":             good(func(q url.Values) { q.Set("client_id", "ghost") }),
	} {
		resp, body := authorize(q)
		if loc, _ := resp.Location(); loc != nil && !strings.HasPrefix(loc.Path, "/oidc") {
			t.Errorf("%s: redirected to %s", name, loc)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, resp.StatusCode, body)
		}
	}

	// Token requests.
	code := func() string {
		back := o.signIn(t, o.issuer+"/authorize?"+good(nil).Encode(), "cy@example.com", goodPassword, "")
		return back.Query().Get("code")
	}
	exchange := func(form url.Values) (int, string) {
		resp, err := http.PostForm(o.issuer+"/oauth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error
	}
	base := func(c string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "client_id": {"storefront"}, "redirect_uri": {storefrontRedirect}, "code_verifier": {verifier}}
	}
	with := func(v url.Values, k, val string) url.Values { v.Set(k, val); return v }
	without := func(v url.Values, k string) url.Values { v.Del(k); return v }
	tokenCases := []struct {
		name string
		form url.Values
		want string
	}{
		{"a PKCE verifier that does not match", with(base(code()), "code_verifier", oauth2.GenerateVerifier()), "invalid_grant"},
		{"no PKCE verifier", without(base(code()), "code_verifier"), "invalid_request"},
		{"another redirect URI", with(base(code()), "redirect_uri", "http://127.0.0.1:5999/other"), "invalid_grant"},
		{"a code never issued", base("ac_forged"), "invalid_grant"},
		{"an unknown grant type", with(base(code()), "grant_type", "password"), "unsupported_grant_type"},
		{"no grant type", without(base(code()), "grant_type"), "invalid_request"},
		{"another client's code", with(base(code()), "client_id", "partner-app"), "invalid_grant"},
	}
	for _, c := range tokenCases {
		if status, got := exchange(c.form); got != c.want || status < 400 {
			t.Errorf("%s: %d %q, want %s", c.name, status, got, c.want)
		}
	}

	// A code is good once; presented again it is refused and what it bought is revoked.
	c := code()
	tok, err := cfg.Exchange(ctx, c, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if status, got := exchange(base(c)); got != "invalid_grant" {
		t.Errorf("a replayed code: %d %q, want invalid_grant", status, got)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); oauthError(err) != "invalid_grant" {
		t.Errorf("the replayed code's refresh token: %v, want invalid_grant", err)
	}
}

// The sign-in page starts with the email a login_hint names (the storefront sends
// it after a sign-up), escaped; a hint that is no email address is dropped.
func TestTheSignInPageStartsWithTheLoginHint(t *testing.T) {
	t.Parallel()
	o := startOP(t, storetest.Targets(t)[0].URL)
	page := func(hint string) string {
		q := url.Values{"client_id": {"storefront"}, "redirect_uri": {storefrontRedirect}, "response_type": {"code"}, "scope": {"openid"},
			"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
			"login_hint": {hint}}
		resp, err := browser.Get(o.issuer + "/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("authorize: %d, no redirect to the sign-in page", resp.StatusCode)
		}
		resp, err = browser.Get(loc.String())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if body := page(`dee"@example.com`); !strings.Contains(body, `name="email" type="email" autocomplete="username" required value="dee&#34;@example.com"`) {
		t.Errorf("the sign-in page does not start with the hinted email:\n%s", body)
	}
	if body := page("not an email"); !strings.Contains(body, `required value=""`) {
		t.Errorf("a hint that is no email address reached the page:\n%s", body)
	}
}
