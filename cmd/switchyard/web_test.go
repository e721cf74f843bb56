package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The browser checks (headless Chromium through playwright-core, and the mermaid
// package) need Node and the packages of internal/web/e2e. They run when SWITCHYARD_TEST_WEB
// is 1 — .ci/run sets it and installs what they need — and then fail, never skip, if
// something is missing.
func webTests(t *testing.T) (dir string, on bool) {
	t.Helper()
	if os.Getenv("SWITCHYARD_TEST_WEB") != "1" {
		t.Log("browser checks not run: set SWITCHYARD_TEST_WEB=1 (needs node, chromium and npm ci in internal/web/e2e)")
		return "", false
	}
	dir, err := filepath.Abs("../../internal/web/e2e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("SWITCHYARD_TEST_WEB=1 but there is no node on PATH")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("SWITCHYARD_TEST_WEB=1 but internal/web/e2e has no node_modules (run npm ci there): %v", err)
	}
	return dir, true
}

// artifacts is where a test keeps what a person may want to look at afterwards
// (screenshots, diagrams): $SWITCHYARD_TEST_ARTIFACTS/<test>, else a temporary
// directory.
func artifacts(t *testing.T) string {
	t.Helper()
	root := os.Getenv("SWITCHYARD_TEST_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// node runs a script of internal/web/e2e with args and environment, failing the test on a
// non-zero exit.
func node(t *testing.T, dir, script string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	return string(out)
}

// mermaidParses checks the files with the mermaid package's own parser.
func mermaidParses(t *testing.T, files ...string) {
	t.Helper()
	dir, on := webTests(t)
	if !on {
		return
	}
	t.Logf("mermaid:\n%s", node(t, dir, "mermaid-check.mjs", nil, files...))
}

// In headless Chromium: a customer signs up in the storefront, signs in with the
// authorization code flow and PKCE on the provider's page, orders and sees
// CONFIRMED arrive, has the session renewed before its access token expires,
// reads the orders with the new token and signs out, which revokes the refresh
// token; a sign-in answer with a tampered state is refused, a provider's error is
// told. An administrator finds that order's trace in the dashboard and sees its
// sequence diagram — the client, the gateway, orders, inventory, payments and the
// bus — with its log lines, and the order among the sagas. Screenshots are kept.
//
// The platform is the built-in one moved to a free port: the gateway listens
// there, the issuer is http://localhost:<port>/oidc (ISSUER_SHOP) and the
// storefront client's redirect URIs name that port, as the file's name 8080. The
// browser opens the shop at 127.0.0.1, the other name the file registers, so the
// storefront's talking to the provider on its own origin is exercised too. The
// storefront is a browser application at a fixed origin, so its redirect URIs
// are matched exactly (RFC 9700 section 2.1); RFC 8252's any-port loopback
// redirects are for native apps (shop-mobile), which listen on a port they pick.
func TestStorefrontAndDashboardInABrowser(t *testing.T) {
	dir, on := webTests(t)
	if !on {
		return
	}
	addr := freePort(t)
	_, port, _ := strings.Cut(addr, ":")
	platform := strings.Replace(fullPlatform, "gateway:\n  listen: 127.0.0.1:0", "gateway:\n  listen: "+addr, 1)
	redirects := "redirect_uris: [http://localhost:8080/, http://127.0.0.1:8080/]"
	if !strings.Contains(platform, redirects) {
		t.Fatalf("the built-in platform's storefront client no longer has %s", redirects)
	}
	platform = strings.Replace(platform, redirects, strings.ReplaceAll(redirects, ":8080/", ":"+port+"/"), 1)
	s := startUp(t, platform, "ISSUER_SHOP=http://localhost:"+port+"/oidc")
	gw := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}
	waitUntil(t, "registration through the gateway", 10*time.Second, func() bool {
		resp, _ := exchange(t, client, "POST", gw+"/api/v1/auth/register", "", `{"email":"ada@example.com","password":"correct-horse-battery","name":"Ada"}`, nil)
		return resp.StatusCode == 201 || resp.StatusCode == 409
	})
	if out, err := execIn(s.dir, "grant", "ada@example.com", "admin").CombinedOutput(); err != nil {
		t.Fatalf("grant: %v\n%s", err, out)
	}
	s.publishPoison("01a20000-0000-7000-8000-0000000000b1") // a dead letter for the dashboard
	shots := artifacts(t)
	out := node(t, dir, "shop-and-dashboard.mjs", []string{"GATEWAY=" + gw, "ARTIFACTS=" + shots,
		"ADMIN_EMAIL=ada@example.com", "ADMIN_PASSWORD=correct-horse-battery"})
	var found struct {
		Provider struct {
			Heading, Client, Email string
		} `json:"provider"`
		SignedInAs         string   `json:"signedInAs"`
		AddressAfterSignIn string   `json:"addressAfterSignIn"`
		PendingAfterSignIn *string  `json:"pendingAfterSignIn"`
		TokenCallsAtSignIn []string `json:"tokenCallsAtSignIn"`
		Renewal            struct {
			Session                         string
			NewAccessToken, NewRefreshToken bool
			TokenCalls                      []string
		} `json:"renewal"`
		OrdersAfterRenewal struct {
			Status           int
			WithRenewedToken bool
			Listed           []string
		} `json:"ordersAfterRenewal"`
		BeforeSignIn struct {
			Products               int
			SignInShown, MineShown bool
			Place, Asked           string
			Cart                   []string
			OrderCalls             int
		} `json:"beforeSignIn"`
		CartAfterSignIn []string `json:"cartAfterSignIn"`
		SignedOut       struct {
			Who        string
			Tokens     any
			MineHidden bool
			Catalogue  bool
		} `json:"signedOut"`
		RefreshAfterSignOut struct {
			Status int
			Error  string
		} `json:"refreshAfterSignOut"`
		Tampered struct {
			Error, Address string
			TokenCalls     []string
			Tokens         any
			MineHidden     bool
		} `json:"tampered"`
		Denied       string   `json:"denied"`
		Order        string   `json:"order"`
		Events       []string `json:"events"`
		Topology     []string `json:"topology"`
		Trace        string   `json:"trace"`
		Participants []string `json:"participants"`
		Messages     int      `json:"messages"`
		LogLines     int      `json:"logLines"`
		Sagas        []string `json:"sagas"`
		DeadLetters  []string `json:"deadLetters"`
		Replay       string   `json:"replay"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &found); err != nil {
		t.Fatalf("browser findings: %v\n%s", err, out)
	}
	t.Logf("browser: %+v (screenshots in %s)", found, shots)
	email := found.SignedInAs
	if found.Provider.Heading != "Sign in" || found.Provider.Client != "Switchyard Shop" || found.Provider.Email == "" ||
		!strings.HasPrefix(email, "browser-") || found.Provider.Email != email {
		t.Errorf("the provider's page %+v, signed in as %q; want the shop's sign-in page starting with the new customer's email, then that customer signed in",
			found.Provider, email)
	}
	if b := found.BeforeSignIn; b.Products == 0 || b.SignInShown || b.MineShown || b.Place != "Sign in to order" || len(b.Cart) != 1 ||
		!strings.Contains(b.Asked, "Sign in") || b.OrderCalls != 0 {
		t.Errorf("before sign-in %+v; want the catalogue and a cart, no sign-in card or orders until checkout, then the sign-in asked for and no order call", b)
	}
	if !slices.Equal(found.CartAfterSignIn, found.BeforeSignIn.Cart) {
		t.Errorf("the cart after sign-in %q; want it as it was left, %q", found.CartAfterSignIn, found.BeforeSignIn.Cart)
	}
	if found.AddressAfterSignIn != gw+"/" || found.PendingAfterSignIn != nil || !slices.Equal(found.TokenCallsAtSignIn, []string{"authorization_code"}) {
		t.Errorf("after sign-in: at %s, pending %v, token calls %v; want a clean address, nothing pending, one code exchange",
			found.AddressAfterSignIn, found.PendingAfterSignIn, found.TokenCallsAtSignIn)
	}
	if r := found.Renewal; !r.NewAccessToken || !r.NewRefreshToken || !strings.Contains(r.Session, "renewed 1×") ||
		!slices.Equal(r.TokenCalls, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("renewal %+v; want new access and refresh tokens from one refresh_token grant", r)
	}
	if o := found.OrdersAfterRenewal; o.Status != 200 || !o.WithRenewedToken || !slices.Contains(o.Listed, found.Order) {
		t.Errorf("orders after the renewal %+v; want order %s read with the renewed token", o, found.Order)
	}
	if so := found.SignedOut; so.Who != "" || so.Tokens != nil || !so.MineHidden || !so.Catalogue {
		t.Errorf("after sign-out %+v; want nobody signed in, no tokens kept, the catalogue still there", so)
	}
	if r := found.RefreshAfterSignOut; r.Status != 400 || r.Error != "invalid_grant" {
		t.Errorf("the refresh token after sign-out: %+v; want it revoked (400 invalid_grant)", r)
	}
	if tp := found.Tampered; !strings.Contains(tp.Error, "state does not match") || len(tp.TokenCalls) != 0 || tp.Tokens != nil ||
		!tp.MineHidden || tp.Address != gw+"/" {
		t.Errorf("a tampered state: %+v; want it refused, shown, its code never exchanged and the address cleaned", tp)
	}
	if !strings.Contains(found.Denied, "the user did not allow it (access_denied)") {
		t.Errorf("a provider's error: %q; want it told", found.Denied)
	}
	for _, p := range []string{"client", "gateway", "orders", "inventory", "payments", "bus", "orders-db"} {
		if !slices.Contains(found.Participants, p) {
			t.Errorf("the order's sequence diagram lacks %s: %v", p, found.Participants)
		}
	}
	for _, n := range []string{"gateway", "orders", "inventory", "payments", "bus"} {
		if !slices.Contains(found.Topology, n) {
			t.Errorf("the topology lacks %s: %v", n, found.Topology)
		}
	}
	if !slices.Contains(found.Sagas, found.Order) {
		t.Errorf("the sagas tab does not list order %s: %v", found.Order, found.Sagas)
	}
	if len(found.DeadLetters) != 1 || !strings.Contains(found.DeadLetters[0], "catalog | inventory.stock.changed.v1") ||
		!strings.Contains(found.Replay, "minimum: got -5, want 0") {
		t.Errorf("dead letters %q, replay %q; want the poison event listed and its replay refused with the reason", found.DeadLetters, found.Replay)
	}
	if found.Messages < 10 || found.LogLines < 2 {
		t.Errorf("the sequence has %d messages and %d log lines; want a whole order's", found.Messages, found.LogLines)
	}
	for _, shot := range []string{"storefront-before-sign-in.png", "storefront-confirmed.png", "storefront-tampered-state.png", "dashboard-topology.png", "dashboard-sequence.png", "dashboard-sagas.png"} {
		if fi, err := os.Stat(filepath.Join(shots, shot)); err != nil || fi.Size() < 5000 {
			t.Errorf("screenshot %s missing or empty: %v", shot, err)
		}
	}
}
