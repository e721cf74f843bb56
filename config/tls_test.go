package config_test

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

func TestServiceTLSIsTokensUnlessMutualIsAskedFor(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("switchyard.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Security.TLS.Mutual() || cfg.Security.TLS.Domain() != config.DefaultTrustDomain {
		t.Errorf("a platform naming nothing: mutual %v, trust domain %q; want tokens in %s",
			cfg.Security.TLS.Mutual(), cfg.Security.TLS.Domain(), config.DefaultTrustDomain)
	}
	cfg, err = config.Load("switchyard.yaml", []byte(minimal+"security:\n  service_tls: mutual\n  trust_domain: shop.example\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Security.TLS.Mutual() || cfg.Security.TLS.Domain() != "shop.example" {
		t.Errorf("service_tls: mutual in shop.example read as mutual %v in %q", cfg.Security.TLS.Mutual(), cfg.Security.TLS.Domain())
	}
}

func TestABadServiceTLSIsReportedWithItsKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, want string }{
		{"an unknown mode", "security:\n  service_tls: strict\n", `switchyard.yaml:6:3: security.service_tls: want tokens or mutual, got "strict"`},
		{"a trust domain with a slash", "security:\n  trust_domain: shop/prod\n", `security.trust_domain: want lower-case letters`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load("switchyard.yaml", []byte(minimal+tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
