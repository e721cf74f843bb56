// Package storetest runs a test against every database engine this machine offers:
// a fresh SQLite file always, and a fresh PostgreSQL database when the environment
// names a server in SWITCHYARD_TEST_POSTGRES (a URL such as
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
//
// A named server that cannot be reached fails the test: in CI an integration test
// never skips silently. Each PostgreSQL database is created for one test and dropped
// after it.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresEnv names the variable that points the suites at a PostgreSQL server.
const PostgresEnv = "SWITCHYARD_TEST_POSTGRES"

// Target is one database a test runs against.
type Target struct {
	// Name is "sqlite" or "postgres"; it names the subtest.
	Name string
	// URL opens a fresh, empty database with store.Open.
	URL string
}

// Targets returns a fresh SQLite database and, when SWITCHYARD_TEST_POSTGRES is set,
// a fresh PostgreSQL database (dropped when t ends).
func Targets(t testing.TB) []Target {
	t.Helper()
	targets := []Target{{Name: "sqlite", URL: "sqlite:" + filepath.Join(t.TempDir(), "test.db")}}
	if server := os.Getenv(PostgresEnv); server != "" {
		targets = append(targets, Target{Name: "postgres", URL: PostgresDatabase(t, server)})
	}
	return targets
}

// Each runs fn as a subtest per target.
func Each(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	for _, target := range Targets(t) {
		t.Run(target.Name, func(t *testing.T) { fn(t, target.URL) })
	}
}

// PostgresDatabase returns the URL of a database with a random name on server, which
// must be reachable, and drops that database when t ends. The database itself is left
// for store.Open to create.
func PostgresDatabase(t testing.TB, server string) string {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", PostgresEnv, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("%s names a PostgreSQL server that cannot be reached: %v", PostgresEnv, err)
	}
	_ = conn.Close(ctx)

	b := make([]byte, 6)
	_, _ = rand.Read(b)
	u.Path = "/sytest_" + hex.EncodeToString(b)
	DropOnCleanup(t, server, u.String())
	return u.String()
}

// DropOnCleanup drops the database that databaseURL names, on server, when t ends
// (whoever created it: a test that lets services create their own databases uses it
// for each of them).
func DropOnCleanup(t testing.TB, server, databaseURL string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("%s: %v", databaseURL, err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
}
