package shop

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"strings"

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
	db, err := usersDB(ctx, e, *configPath)
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

// cmdClient registers an OAuth client of the shop's OpenID Connect provider in
// the users database, or (--print-only) makes a secret and its SHA-256 for a
// client declared in switchyard.yaml.
func cmdClient(ctx context.Context, e *cli.Env, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		e.Flags("client").Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "add" {
		return cli.Usagef("client add <id> --name <name> [--grant client_credentials] [--scope s]... [--redirect uri]... [--public] [--print-only]")
	}
	fs := e.Flags("client add")
	configPath := cli.ConfigFlag(fs)
	name := fs.String("name", "", "the client's `name`, shown on the consent page (required)")
	public := fs.Bool("public", false, "a public client (no secret: a browser page or a phone app); it must use PKCE")
	native := fs.Bool("native", false, "an installed app: loopback or reverse-domain redirect URIs")
	firstParty := fs.Bool("first-party", false, "trusted without the consent page")
	printOnly := fs.Bool("print-only", false, "only make a secret and print it with its SHA-256, for settings.clients in switchyard.yaml")
	var grants, scopes, redirects listFlag
	fs.Var(&grants, "grant", "a `grant` the client may use: authorization_code, refresh_token, client_credentials (repeatable) [client_credentials]")
	fs.Var(&scopes, "scope", "a `scope` the client may ask for beyond openid, profile, email and offline_access (repeatable)")
	fs.Var(&redirects, "redirect", "a redirect `URI` (repeatable; needed with authorization_code)")
	rest := args[1:]
	id := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:] // the id comes first, its flags after it
	}
	if err := e.Parse(fs, rest); err != nil {
		return err
	}
	if id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		id = ""
	}
	if *printOnly {
		secret := users.NewClientSecret()
		fmt.Fprintf(e.Stdout, "secret: %s\nsecret_sha256: %s\n", secret, users.SecretSHA256(secret))
		return nil
	}
	if id == "" {
		return cli.Usagef("client add needs the client's id, e.g. switchyard client add stock-sync --name 'Stock sync' --scope inventory:write")
	}
	if len(grants) == 0 {
		grants = listFlag{users.GrantClientCredentials}
	}
	c := users.Client{ID: id, Name: *name, Grants: grants, Scopes: scopes, Redirects: redirects, Native: *native, FirstParty: *firstParty}
	db, err := usersDB(ctx, e, *configPath)
	if err != nil {
		return err
	}
	defer db.Close()
	secret, err := users.RegisterClient(ctx, db, c, *public)
	if err != nil {
		return fmt.Errorf("client %s: %w", c.ID, err)
	}
	fmt.Fprintf(e.Stdout, "client %s registered\n", c.ID)
	if secret != "" {
		fmt.Fprintf(e.Stdout, "client_secret: %s\n(shown this once; only its hash is kept)\n", secret)
	}
	return nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// usersDB opens the users service's own database, migrated, as an operator's
// command does.
func usersDB(ctx context.Context, e *cli.Env, configPath string) (*store.DB, error) {
	cfg, _, err := e.LoadConfig(configPath)
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, store.Config{URL: cfg.DatabaseURL("users"), Migrations: users.Migrations(), Logger: telemetry.Discard()})
}
