package authn

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/problem"
)

// Mutual TLS between services (security.service_tls: mutual).
//
// Each service holds a short-lived X.509 certificate whose one URI name is its
// SPIFFE ID, spiffe://<trust domain>/service/<name>, issued by the platform's CA,
// and the CA's certificate (a bundle, which may hold several CAs while one replaces
// another). A caller presents its certificate and checks that the callee's chains
// to the CA and names the service it meant to call — by SPIFFE ID, not by host
// name, since instances are reached at the addresses discovery gives. A callee
// requires a certificate that chains to the CA and names one of the services that
// declare it as a dependency: any other is refused during the handshake, before a
// request is read, let alone a handler run. Chains are checked by crypto/x509; only
// the SPIFFE ID is read here.
//
// Rotation needs no restart: [Certificates] reads its files again, at most once a
// second (Interval), when a handshake needs them, and uses what they hold from the
// next handshake on, while connections already open carry on. A set of files that
// does not make a valid whole — a certificate not matching its key, or not chaining
// to the bundle, as while a rotation is half written — is ignored and the last good
// one kept. `switchyard up` writes each certificate and its key as one file,
// replaced by a rename; Kubernetes replaces a mounted Secret's files at once.
//
// Service tokens are not sent under mutual TLS: the certificate proves the caller
// on every connection, so a token would only repeat it. The end user's access
// token still travels in Authorization and is verified as before.

// CertConfig locates a service's certificate files.
type CertConfig struct {
	// Service is the service the certificate must name. Required.
	Service string
	// TrustDomain of the SPIFFE IDs [switchyard.local].
	TrustDomain string
	// Cert is the PEM certificate (its chain may follow); Key its PEM private key,
	// which may be the same file. Required.
	Cert, Key string
	// CA is the PEM bundle of the CAs whose certificates are trusted. Required.
	CA string
	// Interval is how often, at most, the files are read again [1s].
	Interval time.Duration
	// Now tells the time [time.Now].
	Now func() time.Time
	// Logger hears of files that could not be used [discard].
	Logger *slog.Logger
}

// Certificates is a service's certificate, key and trusted CAs, read from files and
// read again when they change. It is safe for concurrent use.
type Certificates struct {
	cfg     CertConfig
	cur     atomic.Pointer[certState]
	checked atomic.Int64 // unix nanoseconds of the last read
	reading sync.Mutex
}

type certState struct {
	raw   [3][]byte // the files as read: certificate, key, CA bundle
	cert  tls.Certificate
	roots *x509.CertPool
}

// LoadCertificates reads the files of cfg, which must make a valid whole.
func LoadCertificates(cfg CertConfig) (*Certificates, error) {
	if cfg.Service == "" || cfg.Cert == "" || cfg.Key == "" || cfg.CA == "" {
		return nil, errors.New("authn: certificates need a Service and the Cert, Key and CA files")
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "switchyard.local"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Certificates{cfg: cfg}
	st, err := c.read(nil)
	if err != nil {
		return nil, err
	}
	c.cur.Store(st)
	c.checked.Store(cfg.Now().UnixNano())
	return c, nil
}

// Service is the service the certificate names.
func (c *Certificates) Service() string { return c.cfg.Service }

// TrustDomain is the trust domain of the SPIFFE IDs.
func (c *Certificates) TrustDomain() string { return c.cfg.TrustDomain }

// Leaf is the certificate in use now.
func (c *Certificates) Leaf() *x509.Certificate { return c.current().cert.Leaf }

// current returns the state in use, reading the files again when Interval has
// passed since they were last read (one reader at a time; the others go on with
// what is in use).
func (c *Certificates) current() *certState {
	st := c.cur.Load()
	now := c.cfg.Now()
	if now.UnixNano()-c.checked.Load() < int64(c.cfg.Interval) || !c.reading.TryLock() {
		return st
	}
	defer c.reading.Unlock()
	c.checked.Store(now.UnixNano())
	next, err := c.read(st)
	if err != nil {
		c.cfg.Logger.Warn("service certificate files not usable; keeping the ones in use", "error", err,
			"expires", st.cert.Leaf.NotAfter)
		return st
	}
	if next != st {
		c.cur.Store(next)
		c.cfg.Logger.Info("service certificate reloaded", "serial", next.cert.Leaf.SerialNumber.Text(16),
			"expires", next.cert.Leaf.NotAfter)
	}
	return next
}

// read reads the files; when they hold what old was read from, it returns old.
func (c *Certificates) read(old *certState) (*certState, error) {
	var raw [3][]byte
	for i, path := range []string{c.cfg.Cert, c.cfg.Key, c.cfg.CA} {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("certificate of %s: %w", c.cfg.Service, err)
		}
		raw[i] = data
	}
	if old != nil && bytes.Equal(raw[0], old.raw[0]) && bytes.Equal(raw[1], old.raw[1]) && bytes.Equal(raw[2], old.raw[2]) {
		return old, nil
	}
	cert, err := tls.X509KeyPair(raw[0], raw[1])
	if err != nil {
		return nil, fmt.Errorf("certificate of %s (%s, %s): %w", c.cfg.Service, c.cfg.Cert, c.cfg.Key, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(raw[2]) {
		return nil, fmt.Errorf("certificate of %s: %s holds no PEM certificate of a CA", c.cfg.Service, c.cfg.CA)
	}
	name, err := serviceOfCert(c.cfg.TrustDomain, cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("certificate of %s (%s): %w", c.cfg.Service, c.cfg.Cert, err)
	}
	if name != c.cfg.Service {
		return nil, fmt.Errorf("certificate of %s (%s) names service %q", c.cfg.Service, c.cfg.Cert, name)
	}
	if _, err := verifyChain(cert.Leaf, cert.Certificate[1:], roots, c.cfg.Now(), x509.ExtKeyUsageAny); err != nil {
		return nil, fmt.Errorf("certificate of %s (%s) against %s: %w", c.cfg.Service, c.cfg.Cert, c.cfg.CA, err)
	}
	return &certState{raw: raw, cert: cert, roots: roots}, nil
}

// verifyChain checks leaf against roots, with the intermediates given as DER.
func verifyChain(leaf *x509.Certificate, intermediates [][]byte, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) ([][]*x509.Certificate, error) {
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}}
	if len(intermediates) > 0 {
		opts.Intermediates = x509.NewCertPool()
		for _, der := range intermediates {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			opts.Intermediates.AddCert(c)
		}
	}
	return leaf.Verify(opts)
}

// ServerTLS is the TLS configuration of this service's listener: it presents the
// certificate in use and admits a client only with a certificate that chains to the
// trusted CAs and names one of allowed; any other certificate fails the handshake.
// A client presenting none is let through the handshake (probes and metrics are
// served without one) and refused by [ServiceVerifier.RequireService] instead.
// HTTP/2 and HTTP/1.1 are offered; TLS 1.3 only; no session tickets, so that every
// connection is checked against the certificates of its time.
func (c *Certificates) ServerTLS(allowed []string) *tls.Config {
	allowed = slices.Clone(allowed)
	type built struct {
		st  *certState
		cfg *tls.Config
	}
	var last atomic.Pointer[built]
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		caller, err := serviceOfCert(c.cfg.TrustDomain, cs.PeerCertificates[0])
		if err != nil {
			return err
		}
		if !slices.Contains(allowed, caller) {
			return fmt.Errorf("service %q may not call %s", caller, c.cfg.Service)
		}
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := c.current()
			if b := last.Load(); b != nil && b.st == st {
				return b.cfg, nil
			}
			cfg := &tls.Config{
				MinVersion:             tls.VersionTLS13,
				NextProtos:             []string{"h2", "http/1.1"},
				Certificates:           []tls.Certificate{st.cert},
				ClientAuth:             tls.VerifyClientCertIfGiven,
				ClientCAs:              st.roots,
				VerifyConnection:       verify,
				SessionTicketsDisabled: true,
				Time:                   c.cfg.Now,
			}
			last.Store(&built{st: st, cfg: cfg})
			return cfg, nil
		},
	}
}

// ClientTLS is the TLS configuration of calls to callee: it presents the
// certificate in use and accepts a server only with a certificate that chains to
// the trusted CAs and names callee.
func (c *Certificates) ClientTLS(callee string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The server is checked in VerifyConnection, by its SPIFFE ID against the
		// CAs in use now, instead of by host name against fixed roots.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &c.current().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			var inter [][]byte
			for _, p := range cs.PeerCertificates[1:] {
				inter = append(inter, p.Raw)
			}
			if _, err := verifyChain(cs.PeerCertificates[0], inter, c.current().roots, c.cfg.Now(), x509.ExtKeyUsageServerAuth); err != nil {
				return err
			}
			name, err := serviceOfCert(c.cfg.TrustDomain, cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if name != callee {
				return fmt.Errorf("called %s, but the server's certificate names %s", callee, name)
			}
			return nil
		},
	}
}

// NewPeerVerifier verifies the callers of self by the certificates their
// connections presented (mutual TLS): it admits a request whose connection carried a
// verified certificate naming one of allowed, in trustDomain.
func NewPeerVerifier(self, trustDomain string, allowed []string) *ServiceVerifier {
	return &ServiceVerifier{self: self, allowed: slices.Clone(allowed), trustDomain: trustDomain, peers: true}
}

// VerifyPeer checks the certificate a connection presented and returns the calling
// service.
func (v *ServiceVerifier) VerifyPeer(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 {
		return "", &problem.Error{Kind: problem.Unauthenticated,
			Detail: "this endpoint is internal: call it over mutual TLS with the certificate of a service that declares " + v.self + " as a dependency"}
	}
	caller, err := serviceOfCert(v.trustDomain, cs.VerifiedChains[0][0])
	if err != nil {
		return "", &problem.Error{Kind: problem.Unauthenticated, Detail: "the client certificate names no service", Err: err}
	}
	if !slices.Contains(v.allowed, caller) {
		return "", &problem.Error{Kind: problem.Forbidden, Detail: fmt.Sprintf("service %q may not call %s", caller, v.self)}
	}
	return caller, nil
}
