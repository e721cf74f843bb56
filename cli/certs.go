package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/config"
)

// Under security.service_tls: mutual, `up` keeps a CA in <data dir>/identity and
// every service's certificate beside it, valid certTTL and replaced once past half
// its life (checked every certCheck), so that a certificate is always at least
// half an hour from expiring; services take the new file up without restarting.
// `switchyard certs renew` replaces them at once.
const (
	certTTL   = time.Hour
	certCheck = time.Minute
)

// certificateHolders are the processes of cfg that hold a certificate: every
// service and the gateway.
func certificateHolders(cfg *config.Config) []string {
	names := cfg.ServiceNames()
	if cfg.Gateway != nil {
		names = append(names, config.GatewayName)
	}
	return names
}

// keepCertificates makes sure dir holds the CA and a current certificate for every
// process of cfg, and keeps them current until ctx ends.
func keepCertificates(ctx context.Context, dir string, cfg *config.Config, log *slog.Logger) error {
	domain := cfg.Security.TLS.Domain()
	ca, err := authn.EnsureCA(dir, domain, time.Now())
	if err != nil {
		return err
	}
	names := certificateHolders(cfg)
	if _, err := ca.Renew(dir, domain, names, certTTL, time.Now(), false); err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(certCheck)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			issued, err := ca.Renew(dir, domain, names, certTTL, time.Now(), false)
			for _, is := range issued {
				log.Info("service certificate renewed", "service", is.Service, "until", is.NotAfter.Format(time.RFC3339))
			}
			if err != nil {
				log.Error("renew service certificates", "error", err)
			}
		}
	}()
	return nil
}

const certsUsage = "certs renew [--services a,b] [--ttl 1h] [--config path]"

func cmdCerts(_ context.Context, e *Env, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return e.commandHelp("certs")
	}
	if len(args) == 0 || args[0] != "renew" {
		return Usagef("usage: %s", certsUsage)
	}
	fs := e.Flags("certs renew")
	configPath := ConfigFlag(fs)
	only := fs.String("services", "", "comma-separated `names` of the services whose certificates to replace (default: all)")
	ttl := fs.Duration("ttl", certTTL, "how long the new certificates are valid, e.g. `1h` (at most 24h)")
	if err := e.Parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("certs renew takes no arguments, got %q", fs.Arg(0))
	}
	if *ttl < time.Minute || *ttl > 24*time.Hour {
		return Usagef("--ttl: want from 1m to 24h")
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	names := certificateHolders(cfg)
	if *only != "" {
		var picked []string
		for _, n := range strings.Split(*only, ",") {
			if n = strings.TrimSpace(n); !slices.Contains(names, n) {
				return Usagef("--services: no service %q in %s; it declares %s", n, cfg.Source, strings.Join(names, ", "))
			}
			picked = append(picked, n)
		}
		names = picked
	}
	dataDir, err := absPath(cfg.DataDir)
	if err != nil {
		return err
	}
	dir := filepath.Join(dataDir, "identity")
	ca, err := authn.LoadCA(filepath.Join(dir, authn.CACertFile), filepath.Join(dir, authn.CAKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w (switchyard up makes the CA when security.service_tls is mutual)", err)
	}
	if err != nil {
		return err
	}
	issued, err := ca.Renew(dir, cfg.Security.TLS.Domain(), names, *ttl, time.Now(), true)
	for _, is := range issued {
		fmt.Fprintf(e.Stdout, "%s\tserial %s\tuntil %s\n", is.Service, is.Serial.Text(16), is.NotAfter.UTC().Format(time.RFC3339))
	}
	return err
}
