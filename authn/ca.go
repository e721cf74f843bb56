package authn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CA is the certificate authority of a platform's service identities: an ECDSA
// P-256 key and its self-signed certificate, which every service trusts. Only what
// issues certificates holds it (`switchyard up`, `switchyard certs renew`); services
// hold their own certificate and the CA's certificate, never its key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// The files of a CA in an identity directory, and of a service's certificate.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CertFile is the name of service's certificate file in an identity directory: its
// certificate and its private key in one PEM file, so that replacing the file
// replaces both at once.
func CertFile(service string) string { return service + ".pem" }

// caTTL is how long a CA made by NewCA is valid.
const caTTL = 5 * 365 * 24 * time.Hour

// ServiceID is the SPIFFE ID of a service: spiffe://<trust domain>/service/<name>.
func ServiceID(trustDomain, service string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: trustDomain, Path: "/service/" + service}
}

// serviceOfID returns the service a SPIFFE ID of trustDomain names.
func serviceOfID(trustDomain string, id *url.URL) (string, error) {
	name, ok := strings.CutPrefix(id.Path, "/service/")
	switch {
	case id.Scheme != "spiffe" || id.User != nil || id.RawQuery != "" || id.Fragment != "":
		return "", fmt.Errorf("%q is not a SPIFFE ID", id.Redacted())
	case id.Host != trustDomain:
		return "", fmt.Errorf("%s is of trust domain %q, not %q", id, id.Host, trustDomain)
	case !ok || name == "" || strings.Contains(name, "/"):
		return "", fmt.Errorf("%s names no service (want spiffe://%s/service/<name>)", id, trustDomain)
	}
	return name, nil
}

// serviceOfCert returns the service a certificate's one SPIFFE ID names.
func serviceOfCert(trustDomain string, cert *x509.Certificate) (string, error) {
	if len(cert.URIs) != 1 {
		return "", fmt.Errorf("the certificate carries %d URI names, want one SPIFFE ID", len(cert.URIs))
	}
	return serviceOfID(trustDomain, cert.URIs[0])
}

// NewCA makes a CA for trustDomain, valid from now.
func NewCA(trustDomain string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"switchyard"}, CommonName: trustDomain + " service CA"},
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: trustDomain}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make the service CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA's certificate, PEM-encoded: what services trust.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Issue makes a certificate for service's SPIFFE ID in trustDomain, valid for ttl
// from now (and a minute before, for clocks a little behind), usable to serve and
// to call, and returns it with its new private key as one PEM file.
func (ca *CA) Issue(trustDomain, service string, now time.Time, ttl time.Duration) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"switchyard"}, CommonName: service},
		URIs:         []*url.URL{ServiceID(trustDomain, service)},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue the certificate of %s: %w", service, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

// LoadCA reads a CA's certificate and key (PEM; the key PKCS #8 or SEC 1).
func LoadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("service CA: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("service CA: %s holds no PEM certificate", certPath)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("service CA %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("service CA: %w", err)
	}
	block, _ = pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("service CA: %s holds no PEM key", keyPath)
	}
	var key *ecdsa.PrivateKey
	if k, perr := x509.ParsePKCS8PrivateKey(block.Bytes); perr == nil {
		key, _ = k.(*ecdsa.PrivateKey)
	} else if key, perr = x509.ParseECPrivateKey(block.Bytes); perr != nil {
		return nil, fmt.Errorf("service CA %s: %w", keyPath, perr)
	}
	if key == nil || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("service CA: the key in %s is not the key of %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// EnsureCA returns the CA kept in dir (ca.crt, ca.key), making one for trustDomain
// when there is none. It is what `switchyard up` runs under mutual TLS.
func EnsureCA(dir, trustDomain string, now time.Time) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	ca, err := LoadCA(certPath, keyPath)
	if err == nil {
		if ca.Cert.URIs == nil || ca.Cert.URIs[0].Host != trustDomain {
			return nil, fmt.Errorf("service CA %s is not of trust domain %q: remove %s and %s to make a new one", certPath, trustDomain, certPath, keyPath)
		}
		return ca, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if ca, err = NewCA(trustDomain, now); err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("service CA: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, ca.CertPEM(), 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Issued is a certificate written by Renew.
type Issued struct {
	Service  string
	Path     string
	Serial   *big.Int
	NotAfter time.Time
}

// Renew writes, for each service, a certificate of ttl into dir (<service>.pem) when
// it has none, when its certificate is past half its life or not from this CA, or
// always when force is set; it returns what it wrote. Each file is replaced whole,
// by a rename, so a service reading it sees the old pair or the new one.
func (ca *CA) Renew(dir, trustDomain string, services []string, ttl time.Duration, now time.Time, force bool) ([]Issued, error) {
	var out []Issued
	for _, s := range services {
		path := filepath.Join(dir, CertFile(s))
		if !force && !ca.due(path, now) {
			continue
		}
		data, err := ca.Issue(trustDomain, s, now, ttl)
		if err != nil {
			return out, err
		}
		if err := writeFileAtomic(path, data, 0o600); err != nil {
			return out, err
		}
		block, _ := pem.Decode(data)
		cert, _ := x509.ParseCertificate(block.Bytes)
		out = append(out, Issued{Service: s, Path: path, Serial: cert.SerialNumber, NotAfter: cert.NotAfter})
	}
	return out, nil
}

// due reports whether the certificate in path needs replacing.
func (ca *CA) due(path string, now time.Time) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return true
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil {
		return true
	}
	return now.After(cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2))
}

// writeFileAtomic replaces path with data: written beside it, then renamed over it.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // gone already once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
