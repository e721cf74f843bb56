package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
)

func migrations(t *testing.T) fstest.MapFS {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, name := range []string{"00001_accounts.sql", "00002_accounts_name.sql"} {
		b, err := os.ReadFile("testdata/migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: b}
	}
	return fsys
}

func open(t *testing.T, url string, fsys fstest.MapFS) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, store.Config{URL: url, Migrations: fsys})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenCreatesTheDatabaseAndMigratesIt(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := open(t, url, migrations(t))
		ctx := context.Background()
		_, err := db.ExecContext(ctx, "INSERT INTO accounts (id, email, name, created_at) VALUES ($1, $2, $3, $4)",
			"a1", "ann@example.com", "Ann", store.Millis(time.Now()))
		if err != nil {
			t.Fatalf("insert into migrated table: %v", err)
		}
		var name string
		// Placeholders out of order bind by number on both engines.
		err = db.QueryRowContext(ctx, "SELECT name FROM accounts WHERE email = $2 AND id = $1", "a1", "ann@example.com").Scan(&name)
		if err != nil || name != "Ann" {
			t.Fatalf("select = %q, %v", name, err)
		}
	})
}

func TestMigrationsRunTwiceAreANoOp(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		fsys := migrations(t)
		first := open(t, url, fsys)
		if _, err := first.Exec("INSERT INTO accounts (id, email, created_at) VALUES ('a1', 'a@x.io', 0)"); err != nil {
			t.Fatal(err)
		}
		first.Close()

		second := open(t, url, fsys) // would fail re-creating the table if it re-ran
		var n int
		if err := second.QueryRow("SELECT count(*) FROM accounts").Scan(&n); err != nil || n != 1 {
			t.Fatalf("after reopening: %d rows, %v", n, err)
		}
		var versions int
		if err := second.QueryRow("SELECT count(*) FROM goose_db_version WHERE version_id > 0").Scan(&versions); err != nil || versions != 2 {
			t.Fatalf("goose recorded %d migrations, %v; want 2", versions, err)
		}
	})
}

func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		fsys := migrations(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := store.Open(context.Background(), store.Config{URL: url, Migrations: fsys})
				if err == nil {
					db.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("a replica failed to open: %v", err)
			}
		}
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := open(t, url, migrations(t))
		boom := errors.New("boom")
		err := db.InTx(context.Background(), func(tx *sql.Tx) error {
			if _, err := tx.Exec("INSERT INTO accounts (id, email, created_at) VALUES ('a1', 'a@x.io', 0)"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx returned %v", err)
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM accounts").Scan(&n); err != nil || n != 0 {
			t.Fatalf("rolled-back row is visible: %d, %v", n, err)
		}
	})
}

func TestUniqueViolationsAreRecognisedOnEveryEngine(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := open(t, url, migrations(t))
		insert := "INSERT INTO accounts (id, email, created_at) VALUES ($1, $2, 0)"
		if _, err := db.Exec(insert, "a1", "a@x.io"); err != nil {
			t.Fatal(err)
		}
		_, dupEmail := db.Exec(insert, "a2", "a@x.io")
		_, dupID := db.Exec(insert, "a1", "b@x.io")
		if !store.IsUniqueViolation(dupEmail) || !store.IsUniqueViolation(dupID) {
			t.Fatalf("not recognised: %v / %v", dupEmail, dupID)
		}
		if store.IsUniqueViolation(errors.New("UNIQUE constraint failed")) {
			t.Fatal("a plain error was taken for a constraint violation")
		}
	})
}

// Concurrent read-modify-write transactions must serialize, not fail with "database
// is locked" half-way: the balance ends exactly at the number of increments.
func TestConcurrentWritersDoNotLoseUpdates(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := open(t, url, migrations(t))
		if _, err := db.Exec("INSERT INTO accounts (id, email, created_at) VALUES ('a1', 'a@x.io', 0)"); err != nil {
			t.Fatal(err)
		}
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					errs <- db.InTx(context.Background(), func(tx *sql.Tx) error {
						var b int64
						q := "SELECT balance FROM accounts WHERE id = 'a1'"
						if db.Dialect() == store.Postgres {
							q += " FOR UPDATE"
						}
						if err := tx.QueryRow(q).Scan(&b); err != nil {
							return err
						}
						_, err := tx.Exec("UPDATE accounts SET balance = $1 WHERE id = 'a1'", b+1)
						return err
					})
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a writer failed: %v", err)
			}
		}
		var b int64
		if err := db.QueryRow("SELECT balance FROM accounts WHERE id = 'a1'").Scan(&b); err != nil || b != writers*each {
			t.Fatalf("balance = %d, %v; want %d", b, err, writers*each)
		}
	})
}

func TestBadURLsAreRefusedClearly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"mysql://root:hunter2@db/x", "unsupported URL"},
		{"sqlite:", "has no path"},
		{"sqlite:/tmp/x.db?synchronous=sometimes", "synchronous must be normal or full"},
		{"postgres://app:hunter2@127.0.0.1:1/x?connect_timeout=2", "open database postgres://app:xxxxx@127.0.0.1:1/x"},
	} {
		_, err := store.Open(context.Background(), store.Config{URL: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want it to mention %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: password in error: %v", tc.url, err)
		}
	}
}

func ExampleOpen() {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + os.TempDir() + "/example-store.db"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	fmt.Println(db.Dialect())
	// Output: sqlite
}

// pool_max_conns in a PostgreSQL URL caps the pool (and is not sent to the server);
// a bad value is refused, naming it.
func TestPoolSizeFromTheURL(t *testing.T) {
	server := os.Getenv(storetest.PostgresEnv)
	if server == "" {
		t.Skip("needs " + storetest.PostgresEnv)
	}
	base := storetest.PostgresDatabase(t, server)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	db, err := store.Open(context.Background(), store.Config{URL: base + sep + "pool_max_conns=3"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Stats().MaxOpenConnections; got != 3 {
		t.Errorf("pool of %d, want 3", got)
	}
	if _, err := store.Open(context.Background(), store.Config{URL: base + sep + "pool_max_conns=many"}); err == nil || !strings.Contains(err.Error(), "pool_max_conns") {
		t.Errorf("a bad pool size: %v", err)
	}
}
