package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/platform"
)

func cmdToken(_ context.Context, e *Env, args []string) error {
	fs := e.Flags("token")
	configPath := ConfigFlag(fs)
	as := fs.String("as", "", "the calling `service` whose identity signs the token (required)")
	to := fs.String("for", "", "the called `service` (the token's audience; required)")
	ttl := fs.Duration("ttl", 5*time.Minute, "how long the token is valid, e.g. `5m` (at most 1h)")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if *as == "" || *to == "" || fs.NArg() > 0 {
		return Usagef("token needs --as <service> and --for <service>")
	}
	if *ttl <= 0 || *ttl > time.Hour {
		return Usagef("--ttl must be between 0 and 1h")
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	keyPath := e.Getenv(platform.EnvServiceKey)
	if keyPath == "" {
		keyPath = filepath.Join(cfg.DataDir, "identity", *as+".key")
	}
	id, err := authn.LoadIdentity(*as, keyPath)
	if err != nil {
		return fmt.Errorf("%w (switchyard up creates the identities in the data directory)", err)
	}
	tok, err := authn.MintServiceToken(id, *to, time.Now(), *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, tok)
	return nil
}
