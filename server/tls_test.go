package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/server"
)

// serverTLS is a TLS configuration with a certificate from a fresh CA, and a pool
// trusting that CA.
func serverTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	ca, err := authn.NewCA("server.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := ca.Issue("server.test", "app", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}}, roots
}

func TestATLSServerTakesTLSAndPlainHTTPOnOnePort(t *testing.T) {
	t.Parallel()
	cfg, roots := serverTLS(t)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			io.WriteString(w, "plain "+r.Proto)
			return
		}
		io.WriteString(w, "tls "+r.Proto)
	})
	s, _, _, _ := start(t, server.Config{TLS: cfg}, app)
	addr := s.Addr().String()
	// The certificate names no host: the test checks its chain only.
	verifyChain := func(cs tls.ConnectionState) error {
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots})
		return err
	}
	clientTLS := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, VerifyConnection: verifyChain}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	var h2 http.Protocols
	h2.SetHTTP2(true)
	for _, tc := range []struct {
		name, url string
		client    *http.Client
		want      string
	}{
		{"a probe without TLS", "http://" + addr + "/readyz", http.DefaultClient, ""},
		{"plain HTTP/1.1", "http://" + addr + "/app", http.DefaultClient, "plain HTTP/1.1"},
		{"HTTP/2 without TLS (gRPC's way)", "http://" + addr + "/app", &http.Client{Transport: &http.Transport{Protocols: &h2c}}, "plain HTTP/2.0"},
		{"HTTP/1.1 over TLS", "https://" + addr + "/app", &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}, "tls HTTP/1.1"},
		{"HTTP/2 over TLS", "https://" + addr + "/app", &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, Protocols: &h2}}, "tls HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || tc.want != "" && string(body) != tc.want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, tc.want)
			}
		})
	}
}

func TestAClientThatSendsNothingHoldsUpNoOther(t *testing.T) {
	t.Parallel()
	cfg, _ := serverTLS(t)
	s, url, _, _ := start(t, server.Config{TLS: cfg, ReadHeaderTimeout: time.Minute}, http.NotFoundHandler())
	silent, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/livez", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a probe behind a silent connection: %v", err)
	}
	resp.Body.Close()
}
