package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite" // the plain driver, for the benchmark's baseline

	"github.com/switchyard/switchyard/store"
)

var kv = fstest.MapFS{"00001_kv.sql": {Data: []byte("-- +goose Up\nCREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL);\n")}}

func openSQLite(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: "sqlite:" + filepath.Join(t.TempDir(), "kv.db"), Migrations: kv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Kept statements behave as fresh ones: repeated, nested in their own rows, and
// past the cache's size.
func TestKeptStatementsBehaveAsFreshOnes(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	ctx := context.Background()
	for i := range 50 {
		if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES ($1, $2)`, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The same query while its own rows are open, on one connection (a transaction).
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT k, v FROM kv WHERE k < $1 ORDER BY k`, 5)
		if err != nil {
			return err
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var k int
			var v string
			rows.Scan(&k, &v)
			var inner int
			if err := tx.QueryRowContext(ctx, `SELECT k, v FROM kv WHERE k < $1 ORDER BY k`, 100).Scan(&inner, new(string)); err != nil {
				return fmt.Errorf("nested: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE kv SET v = v || '!' WHERE k = $1`, k); err != nil {
				return err
			}
			n++
		}
		if n != 5 {
			return fmt.Errorf("outer rows: %d, want 5", n)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	// More distinct statements than the cache keeps, each right.
	for i := range 300 {
		var v string
		if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT v || '%d' FROM kv WHERE k = $1`, i), i%50).Scan(&v); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("v%d", i%50)
		if i%50 < 5 {
			want += "!"
		}
		if v != want+fmt.Sprint(i) {
			t.Fatalf("query %d: %q, want %q", i, v, want+fmt.Sprint(i))
		}
	}
	// A script (several statements) still runs whole.
	if _, err := db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (1000, 'a'); INSERT INTO kv (k, v) VALUES (1001, 'b');`); err != nil {
		t.Fatal(err)
	}
	var n int
	db.QueryRow(`SELECT count(*) FROM kv WHERE k >= 1000`).Scan(&n)
	if n != 2 {
		t.Errorf("script inserted %d rows, want 2", n)
	}
}

// BenchmarkSQLiteInsertTx is a service's typical write: a transaction of three
// statements. Compare store's kept statements with the plain driver.
func BenchmarkSQLiteInsertTx(b *testing.B) {
	const (
		insert = `INSERT INTO kv (k, v) VALUES ($1, $2)`
		update = `UPDATE kv SET v = $1 WHERE k = $2`
		read   = `SELECT v FROM kv WHERE k = $1`
	)
	run := func(b *testing.B, db *sql.DB) {
		ctx := context.Background()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			tx.ExecContext(ctx, insert, i, "x")
			tx.ExecContext(ctx, update, "y", i)
			var v string
			tx.QueryRowContext(ctx, read, i).Scan(&v)
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("store", func(b *testing.B) { run(b, openSQLite(b).DB) })
	b.Run("driver", func(b *testing.B) {
		db := openSQLite(b) // migrated; then the same file through the plain driver
		path := db.String()[len("sqlite:"):]
		plain, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			b.Fatal(err)
		}
		defer plain.Close()
		run(b, plain)
	})
}
