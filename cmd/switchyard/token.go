package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/switchyard/switchyard/authn"
)

func cmdToken(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "token")
	configPath := configFlag(fs)
	as := fs.String("as", "", "the calling `service` whose identity signs the token (required)")
	to := fs.String("for", "", "the called `service` (the token's audience; required)")
	ttl := fs.Duration("ttl", 5*time.Minute, "how long the token is valid (at most 1h)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *as == "" || *to == "" || fs.NArg() > 0 {
		return usageErrorf("token needs --as <service> and --for <service>")
	}
	if *ttl <= 0 || *ttl > time.Hour {
		return usageErrorf("--ttl must be between 0 and 1h")
	}
	cfg, _, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	keyPath := e.getenv(envServiceKey)
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
	fmt.Fprintln(e.stdout, tok)
	return nil
}
