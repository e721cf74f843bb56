package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	inventoryv1 "github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/telemetry"
)

// mutualPlatform is the full platform with mutual TLS between its services.
var mutualPlatform = strings.Replace(fullPlatform, "\nsecurity:\n", "\nsecurity:\n  service_tls: mutual\n", 1)

// ca is the stack's CA, as an operator's tool would read it.
func (s *stack) ca() *authn.CA {
	s.t.Helper()
	dir := filepath.Join(s.dir, ".switchyard", "identity")
	ca, err := authn.LoadCA(filepath.Join(dir, authn.CACertFile), filepath.Join(dir, authn.CAKeyFile))
	if err != nil {
		s.t.Fatal(err)
	}
	return ca
}

// addr is where a service of the stack listens.
func (s *stack) addr(service string) string {
	url, _ := s.service(service)
	return strings.TrimPrefix(url, "http://")
}

// served dials a service over TLS without a certificate of its own (the handshake
// admits that; its requests would be refused) and returns the serial of the
// certificate the service presents, after checking it chains to the stack's CA.
func served(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}) // checked below, by chain
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("%s presents a certificate not from the stack's CA: %v", addr, err)
	}
	return leaf.SerialNumber.String()
}

// inventoryAs is an inventory client over mutual TLS presenting cert.
func inventoryAs(addr string, cert tls.Certificate) inventoryv1connect.InventoryServiceClient {
	var h2 http.Protocols
	h2.SetHTTP2(true)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &h2,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, // the server's refusal is measured
			Certificates: []tls.Certificate{cert}}}}
	return inventoryv1connect.NewInventoryServiceClient(client, "https://"+addr, connect.WithGRPC())
}

func issued(t *testing.T, ca *authn.CA, service string) tls.Certificate {
	t.Helper()
	data, err := ca.Issue(config.DefaultTrustDomain, service, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// handled counts the requests that reached a service's application (its server's
// middleware counts every one it sees).
func handled(t *testing.T, addr string) float64 {
	t.Helper()
	families, err := telemetry.Scrape(context.Background(), http.DefaultClient, "http://"+addr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, m := range families["http_server_requests_total"].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}

// Under `up` with security.service_tls: mutual an order goes end to end through
// the gateway; every service presents a certificate from the stack's CA, and
// answers probes in plain HTTP; inventory admits orders' certificate and refuses,
// in the handshake and before any handler, the certificate of catalog (which does
// not declare inventory as a dependency) and one from another CA; a request without
// a certificate reaches no handler either.
func TestMutualTLSUnderUpCarriesOrdersAndAdmitsOnlyDeclaredCallers(t *testing.T) {
	s := startUp(t, mutualPlatform)
	gw, _ := s.service("gateway")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, _ := exchange(t, client, "POST", gw+"/api/v1/auth/register", "", `{"email":"ann@example.com","password":"correct-horse-battery","name":"Ann"}`, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register through the gateway: %d", resp.StatusCode)
	}
	_, login := exchange(t, client, "POST", gw+"/api/v1/auth/login", "", `{"email":"ann@example.com","password":"correct-horse-battery"}`, nil)
	token, _ := login["access_token"].(string)
	resp, order := exchange(t, client, "POST", gw+"/api/v2/orders", token,
		`{"items":[{"product_id":"prod-kbd-001","quantity":2}],"payment":{"card_number":"4242424242424242"}}`, map[string]string{"Idempotency-Key": "mtls-1"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("place order through the gateway: %d %v", resp.StatusCode, order)
	}
	_, order = exchange(t, client, "GET", gw+"/api/v2/orders/"+order["id"].(string), token, "", map[string]string{"Prefer": "wait=5"})
	if order["status"] != "CONFIRMED" {
		t.Fatalf("the order over mutual TLS (users, catalog by REST; inventory, payments by gRPC): %v", order)
	}

	ca := s.ca()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, svc := range []string{"users", "catalog", "orders", "inventory", "payments", "notifications"} {
		served(t, s.addr(svc), roots)
		if !ready("http://" + s.addr(svc)) {
			t.Errorf("%s's /readyz does not answer in plain HTTP", svc)
		}
	}

	inv := s.addr("inventory")
	stock := connect.NewRequest(&inventoryv1.GetStockRequest{ProductIds: []string{"prod-kbd-001"}})
	before := handled(t, inv)
	if _, err := inventoryAs(inv, issued(t, ca, "orders")).GetStock(context.Background(), stock); err != nil {
		t.Fatalf("GetStock with orders' certificate: %v", err)
	}
	if after := handled(t, inv); after != before+1 {
		t.Fatalf("inventory counted %v requests for one call, want 1", after-before)
	}
	other, err := authn.NewCA(config.DefaultTrustDomain, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, reason string
		cert         tls.Certificate
	}{
		{"catalog's certificate (catalog does not declare inventory)", `service \"catalog\" may not call inventory`, issued(t, ca, "catalog")},
		{"orders' name from another CA", "certificate signed by unknown authority", issued(t, other, "orders")},
	} {
		name := tc.name
		before := handled(t, inv)
		_, err := inventoryAs(inv, tc.cert).GetStock(context.Background(), stock)
		if err == nil {
			t.Errorf("GetStock with %s answered, want the handshake refused", name)
		}
		// TLS 1.3 has the client finish first: it learns of the refusal as an alert
		// or a closed connection, and inventory logs why.
		waitUntil(t, "inventory logging why it refused "+name, 10*time.Second, func() bool {
			return strings.Contains(s.out.String(), tc.reason)
		})
		if after := handled(t, inv); after != before {
			t.Errorf("GetStock with %s reached inventory's server: %v requests", name, after-before)
		}
	}
	// Without a certificate: a REST service's document says how to call it.
	resp, body := exchange(t, client, "GET", "http://"+s.addr("orders")+"/v2/orders", token, "", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body["detail"].(string), "mutual TLS") {
		t.Errorf("orders in plain HTTP, with a user's token: %d %v, want 401 naming mutual TLS", resp.StatusCode, body)
	}
}

// progress is the number of orders accepted so far, from the load's last progress line.
func progress(stderr string) int {
	m := regexp.MustCompile(`(\d+) accepted`).FindAllStringSubmatch(stderr, -1)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// Every certificate replaced twice while `switchyard load` places orders through
// the gateway: each service takes up its new certificate without a restart, no
// request of the load fails, and `switchyard check` finds every invariant holding.
func TestRotatingCertificatesUnderLoadLosesNothing(t *testing.T) {
	s := startUp(t, mutualPlatform)
	services := []string{"users", "catalog", "orders", "inventory", "payments", "notifications"}
	roots := x509.NewCertPool()
	roots.AddCert(s.ca().Cert)
	pids := map[string]int{}
	for _, svc := range append(services, "gateway") {
		_, pids[svc] = s.service(svc)
	}

	loadOut, loadErr := &lockedBuffer{}, &lockedBuffer{}
	load := execIn(s.dir, "load", "--rate", "30", "--duration", "30s", "--customers", "6")
	load.Stdout, load.Stderr = loadOut, loadErr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loaded := make(chan error, 1)
	go func() { loaded <- load.Wait() }()
	waitUntil(t, "load under way", 15*time.Second, func() bool { return strings.Contains(loadErr.String(), "accepted") })

	for round := 1; round <= 2; round++ {
		old := map[string]string{}
		for _, svc := range services {
			old[svc] = served(t, s.addr(svc), roots)
		}
		out, err := execIn(s.dir, "certs", "renew").CombinedOutput()
		if err != nil || strings.Count(string(out), "serial") != len(services)+1 {
			t.Fatalf("certs renew: %v\n%s", err, out)
		}
		for _, svc := range services {
			took := waitUntil(t, svc+" serving its renewed certificate", 15*time.Second, func() bool {
				return served(t, s.addr(svc), roots) != old[svc]
			})
			t.Logf("round %d: %s serves its new certificate after %v", round, svc, took.Round(time.Millisecond))
		}
		// Orders go on being accepted with the new certificates before the next round.
		since := progress(loadErr.String())
		waitUntil(t, "100 more orders accepted", 20*time.Second, func() bool { return progress(loadErr.String()) >= since+100 })
	}

	select {
	case err := <-loaded:
		if err != nil {
			t.Fatalf("load: %v\n%s\n%s", err, loadOut.String(), loadErr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("load did not finish")
	}
	summary := loadOut.String()
	t.Logf("load:\n%s", summary)
	if n := loadFigure(summary, `(?m)^\s+failed\s+(\d+)`); n != 0 || strings.Contains(summary, "\nerrors ") {
		t.Errorf("%d requests of the load failed across the rotations", n)
	}
	if loadFigure(summary, `(?m)^\s+accepted\s+(\d+)`) == 0 || !strings.Contains(summary, "CONFIRMED") {
		t.Error("no order accepted and confirmed under load")
	}
	for svc, pid := range pids {
		if _, now := s.service(svc); now != pid {
			t.Errorf("%s restarted (pid %d, now %d): rotation must need no restart", svc, pid, now)
		}
	}
	out, err := execIn(s.dir, "check", "--wait", "30s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all invariants hold") {
		t.Fatalf("switchyard check after the rotations: %v\n%s", err, out)
	}
}
