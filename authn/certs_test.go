package authn_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
)

const domain = "shop.test"

// pki is a CA in a directory, with certificates issued from it.
type pki struct {
	dir string
	ca  *authn.CA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := authn.EnsureCA(dir, domain, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &pki{dir: dir, ca: ca}
}

// certs issues service a certificate (ttl from now) and loads it, reread every
// millisecond.
func (p *pki) certs(t testing.TB, service string) *authn.Certificates {
	t.Helper()
	if _, err := p.ca.Renew(p.dir, domain, []string{service}, time.Hour, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.dir, authn.CertFile(service))
	c, err := authn.LoadCertificates(authn.CertConfig{Service: service, TrustDomain: domain, Cert: path, Key: path,
		CA: filepath.Join(p.dir, authn.CACertFile), Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pair is an issued certificate as a TLS certificate, for clients made by hand.
func (p *pki) pair(t testing.TB, service string, now time.Time, ttl time.Duration) tls.Certificate {
	t.Helper()
	data, err := p.ca.Issue(domain, service, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// callee serves inventory over mutual TLS, admitting orders, and counts the
// requests its handler saw.
type callee struct {
	url      string
	handled  atomic.Int64
	refusals lockedLog // the server's log of refused handshakes
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// refused waits for the server to log a refused handshake containing reason.
func (c *callee) refused(reason string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(c.refusals.String(), reason) {
			return true
		}
	}
	return false
}

func serveInventory(t testing.TB, certs *authn.Certificates) *callee {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &callee{url: "https://" + ln.Addr().String()}
	verifier := authn.NewPeerVerifier("inventory", domain, []string{"orders"})
	fail := func(w http.ResponseWriter, r *http.Request, err error) { problem.Writer{}.Write(w, r, err) }
	handler := verifier.RequireService(fail, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.handled.Add(1)
		caller, _ := authn.CallerFrom(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{"caller": caller, "serial": certs.Leaf().SerialNumber.String()})
	}))
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(&c.refusals, "", 0)}
	go func() { _ = srv.Serve(tls.NewListener(ln, certs.ServerTLS([]string{"orders"}))) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

func client(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// get calls url and returns the answer's status and JSON body.
func get(c *http.Client, url string) (int, map[string]any, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(body, &v)
	return resp.StatusCode, v, nil
}

func TestAnIssuedCertificateNamesItsServiceAndServesBothEnds(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	now := time.Now()
	pair := p.pair(t, "orders", now, time.Hour)
	leaf := pair.Leaf
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://shop.test/service/orders" {
		t.Errorf("URI names %v, want the one SPIFFE ID spiffe://shop.test/service/orders", leaf.URIs)
	}
	if got := leaf.NotAfter.Sub(now).Round(time.Minute); got != time.Hour {
		t.Errorf("valid for %v from now, want 1h", got)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("does not verify for usage %v against its CA: %v", usage, err)
		}
	}
	if !p.ca.Cert.IsCA || p.ca.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("the CA is CA %v with a %v key, want an ECDSA CA", p.ca.Cert.IsCA, p.ca.Cert.PublicKeyAlgorithm)
	}
	again, err := authn.EnsureCA(p.dir, domain, now)
	if err != nil || !again.Cert.Equal(p.ca.Cert) {
		t.Errorf("EnsureCA made a new CA where one was kept (%v)", err)
	}
	if _, err := authn.EnsureCA(p.dir, "other.test", now); err == nil {
		t.Error("a CA of another trust domain was accepted")
	}
}

func TestRenewReplacesOnlyCertificatesPastHalfTheirLife(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	now := time.Now()
	first, err := p.ca.Renew(p.dir, domain, []string{"orders", "catalog"}, time.Hour, now, false)
	if err != nil || len(first) != 2 {
		t.Fatalf("first renewal issued %v (%v), want both", first, err)
	}
	if again, _ := p.ca.Renew(p.dir, domain, []string{"orders", "catalog"}, time.Hour, now.Add(29*time.Minute), false); len(again) != 0 {
		t.Errorf("at 29 minutes of 60 renewed %v, want none", again)
	}
	late, _ := p.ca.Renew(p.dir, domain, []string{"orders", "catalog"}, time.Hour, now.Add(31*time.Minute), false)
	if len(late) != 2 {
		t.Errorf("at 31 minutes of 60 renewed %d, want both", len(late))
	}
	forced, _ := p.ca.Renew(p.dir, domain, []string{"orders"}, time.Hour, now, true)
	if len(forced) != 1 || forced[0].Serial.Cmp(late[0].Serial) == 0 {
		t.Errorf("a forced renewal gave %v, want a new certificate", forced)
	}
	info, err := os.Stat(filepath.Join(p.dir, authn.CertFile("orders")))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the certificate file's mode is %v (%v), want 0600: it holds the key", info.Mode().Perm(), err)
	}
}

func TestADeclaredCallerIsAdmittedByItsCertificate(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	inv := serveInventory(t, p.certs(t, "inventory"))
	code, body, err := get(client(p.certs(t, "orders").ClientTLS("inventory")), inv.url+"/stock")
	if err != nil || code != http.StatusOK || body["caller"] != "orders" {
		t.Fatalf("orders calling inventory: %d %v (%v), want 200 with the caller orders", code, body, err)
	}
}

func TestACallerIsRefusedBeforeAnyHandlerUnlessItsCertificateNamesADeclaredCaller(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t) // another platform's CA
	inv := serveInventory(t, p.certs(t, "inventory"))
	now := time.Now()
	byHand := func(cert tls.Certificate) *tls.Config {
		// The client takes any server: what is measured is the server's refusal.
		return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}
	}
	for _, tc := range []struct {
		name string
		tls  *tls.Config
		want string
	}{
		{"a service that does not declare inventory as a dependency", p.certs(t, "catalog").ClientTLS("inventory"), `service "catalog" may not call inventory`},
		{"a certificate of another CA", byHand(other.pair(t, "orders", now, time.Hour)), "certificate signed by unknown authority"},
		{"an expired certificate", byHand(p.pair(t, "orders", now.Add(-2*time.Hour), time.Hour)), "certificate has expired"},
		{"a certificate of another trust domain", byHand(issueIn(t, p, "other.test", "orders")), `is of trust domain "other.test"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := get(client(tc.tls), inv.url+"/stock")
			// TLS 1.3 has the client finish first: it learns of the refusal as an
			// alert or a closed connection, and the server says why.
			if err == nil {
				t.Errorf("got %d %v, want the handshake refused", code, body)
			}
			if !inv.refused(tc.want) {
				t.Errorf("the server logged no refusal saying %q (client: %v); its log:\n%s", tc.want, err, inv.refusals.String())
			}
		})
	}
	t.Run("no certificate at all", func(t *testing.T) {
		code, body, err := get(client(&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}), inv.url+"/stock")
		if err != nil || code != http.StatusUnauthorized || !strings.Contains(body["detail"].(string), "mutual TLS") {
			t.Errorf("got %d %v (%v), want a 401 problem saying to call over mutual TLS", code, body, err)
		}
	})
	if n := inv.handled.Load(); n != 0 {
		t.Errorf("the handler ran %d times, want never", n)
	}
}

// issueIn makes a certificate for service in another trust domain from p's CA.
func issueIn(t testing.TB, p *pki, trustDomain, service string) tls.Certificate {
	t.Helper()
	data, err := p.ca.Issue(trustDomain, service, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func TestACallerRefusesAServerNamingAnotherService(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	inv := serveInventory(t, p.certs(t, "inventory"))
	_, _, err := get(client(p.certs(t, "orders").ClientTLS("payments")), inv.url+"/authorize")
	if err == nil || !strings.Contains(err.Error(), "names inventory") {
		t.Errorf("calling payments at inventory's address: %v, want refused as naming inventory", err)
	}
	if n := inv.handled.Load(); n != 0 {
		t.Errorf("the handler ran %d times, want never", n)
	}
}

func TestRotatedFilesAreUsedWithoutARestartAndOpenConnectionsCarryOn(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	// inventory's certificate and key in two files, as a Kubernetes Secret has them.
	certPath, keyPath := filepath.Join(p.dir, "tls.crt"), filepath.Join(p.dir, "tls.key")
	write := func(data []byte) {
		t.Helper()
		var certs, keys []byte
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				certs = append(certs, pem.EncodeToMemory(b)...)
			} else {
				keys = append(keys, pem.EncodeToMemory(b)...)
			}
		}
		if certs != nil {
			must(t, os.WriteFile(certPath, certs, 0o600))
		}
		if keys != nil {
			must(t, os.WriteFile(keyPath, keys, 0o600))
		}
	}
	issue := func() []byte {
		data, err := p.ca.Issue(domain, "inventory", time.Now(), time.Hour)
		must(t, err)
		return data
	}
	write(issue())
	invCerts, err := authn.LoadCertificates(authn.CertConfig{Service: "inventory", TrustDomain: domain, Cert: certPath, Key: keyPath,
		CA: filepath.Join(p.dir, authn.CACertFile), Interval: time.Millisecond})
	must(t, err)
	inv := serveInventory(t, invCerts)
	kept := client(p.certs(t, "orders").ClientTLS("inventory")) // one connection, kept alive
	served := func(c *http.Client) string {
		t.Helper()
		code, body, err := get(c, inv.url+"/stock")
		if err != nil || code != http.StatusOK {
			t.Fatalf("call: %d %v (%v)", code, body, err)
		}
		return body["serial"].(string)
	}
	before := served(kept)

	// Half a rotation — a new certificate beside the old key — is not used.
	next := issue()
	certOnly, _ := pem.Decode(next)
	must(t, os.WriteFile(certPath, pem.EncodeToMemory(certOnly), 0o600))
	fresh := func() *http.Client { return client(p.certs(t, "orders").ClientTLS("inventory")) }
	if got := served(fresh()); got != before {
		t.Fatalf("a certificate not matching its key was taken up: serial %s", got)
	}
	// The whole rotation is, from the next handshake on; the kept connection carries on.
	write(next)
	deadline := time.Now().Add(10 * time.Second)
	for served(fresh()) == before {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate was not taken up within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := invCerts.Leaf().SerialNumber; got.Cmp(mustLeaf(t, next).SerialNumber) != 0 {
		t.Errorf("in use: serial %v, want the rotated one", got)
	}
	served(kept)
}

func mustLeaf(t testing.TB, data []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	must(t, err)
	return c
}

func TestCertificatesThatDoNotMakeAWholeAreRefusedAtStart(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := newPKI(t)
	p.certs(t, "orders")
	path := filepath.Join(p.dir, authn.CertFile("orders"))
	for _, tc := range []struct {
		name string
		cfg  authn.CertConfig
		want string
	}{
		{"another service's certificate", authn.CertConfig{Service: "catalog", TrustDomain: domain, Cert: path, Key: path, CA: filepath.Join(p.dir, authn.CACertFile)}, `names service "orders"`},
		{"a CA it does not chain to", authn.CertConfig{Service: "orders", TrustDomain: domain, Cert: path, Key: path, CA: filepath.Join(other.dir, authn.CACertFile)}, "unknown authority"},
		{"a missing file", authn.CertConfig{Service: "orders", TrustDomain: domain, Cert: path + ".gone", Key: path, CA: filepath.Join(p.dir, authn.CACertFile)}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := authn.LoadCertificates(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAPeerVerifierTakesNoTokens(t *testing.T) {
	t.Parallel()
	v := authn.NewPeerVerifier("inventory", domain, []string{"orders"})
	_, err := v.Verify("a.b.c")
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.Unauthenticated {
		t.Errorf("a token under mutual TLS: %v, want unauthenticated", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
