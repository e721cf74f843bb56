package main

import (
	"context"
	"fmt"
	"regexp"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

var roleName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// cmdGrant gives a user a role, writing to the users service's own database as an
// operator would: there is deliberately no HTTP route that makes an administrator.
func cmdGrant(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "grant")
	configPath := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageErrorf("grant needs an email and a role, e.g. switchyard grant ann@example.com admin")
	}
	email, role := fs.Arg(0), fs.Arg(1)
	if !roleName.MatchString(role) {
		return usageErrorf("role %q: want lowercase letters, digits and dashes, at most 32", role)
	}
	cfg, _, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL("users"), Migrations: users.Migrations(), Logger: telemetry.Discard()})
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := users.New(ctx, users.Config{}, db, authn.NewServiceVerifier("users", nil, nil, nil), telemetry.Discard(), nil)
	if err != nil {
		return err
	}
	if err := svc.GrantRole(ctx, email, role); err != nil {
		return fmt.Errorf("grant %s to %s: %w", role, email, err)
	}
	fmt.Fprintf(e.stdout, "%s now has the role %s; it is in their tokens from their next sign-in\n", email, role)
	return nil
}
