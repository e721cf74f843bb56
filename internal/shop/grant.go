package shop

import (
	"context"
	"fmt"
	"regexp"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

var roleName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// cmdGrant gives a user a role, writing to the users service's own database as an
// operator would: there is deliberately no HTTP route that makes an administrator.
func cmdGrant(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("grant")
	configPath := cli.ConfigFlag(fs)
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return cli.Usagef("grant needs an email and a role, e.g. switchyard grant ann@example.com admin")
	}
	email, role := fs.Arg(0), fs.Arg(1)
	if !roleName.MatchString(role) {
		return cli.Usagef("role %q: want lowercase letters, digits and dashes, at most 32", role)
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, store.Config{URL: cfg.DatabaseURL("users"), Migrations: users.Migrations(), Logger: telemetry.Discard()})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := users.GrantRole(ctx, db, email, role); err != nil {
		return fmt.Errorf("grant %s to %s: %w", role, email, err)
	}
	fmt.Fprintf(e.Stdout, "%s now has the role %s; it is in their tokens from their next sign-in\n", email, role)
	return nil
}
