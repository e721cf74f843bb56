// Package store opens a service's own database — a SQLite file (modernc.org/sqlite,
// pure Go) or a PostgreSQL database (pgx) — from a URL, creates it on the PostgreSQL
// server when it is missing, and applies the service's embedded, versioned
// migrations (goose) before anyone uses it.
//
// One SQL text serves both engines: write placeholders as $1, $2, ... (PostgreSQL's
// form, which modernc's SQLite driver binds by number too), keep to the portable
// subset (TEXT, BIGINT, INTEGER, ON CONFLICT, RETURNING) and store times as
// BIGINT Unix milliseconds.
//
// SQLite runs in WAL mode with a busy timeout, foreign keys on, and transactions that
// take the write lock when they begin (BEGIN IMMEDIATE), so concurrent writers wait
// instead of failing half-way. Migrations on PostgreSQL hold an advisory lock, so
// replicas starting together apply each migration once.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names a database engine.
type Dialect string

// The supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Config says which database to open and how.
type Config struct {
	// URL is sqlite:<path>[?synchronous=normal|full] or postgres://user@host:port/db.
	// A relative SQLite path is relative to the working directory; its directory is
	// created.
	URL string

	// Migrations holds goose SQL migrations (NNNNN_name.sql) at its root. Nil means
	// none.
	Migrations fs.FS

	// MaxOpenConns caps the connection pool [SQLite 8, PostgreSQL 16].
	MaxOpenConns int

	// Logger receives one line per applied migration. Nil means silent.
	Logger *slog.Logger

	// Tracing, when set, records a client span for each statement run inside a
	// traced request (statements with no span in their context are not traced:
	// pollers would flood the traces). Spans carry db.system.name, db.namespace
	// and the statement's operation; statement text and arguments are left out.
	Tracing trace.TracerProvider
}

// DB is an open, migrated database. It embeds *sql.DB; use $N placeholders.
type DB struct {
	*sql.DB
	dialect Dialect
	target  string
	path    string          // SQLite file, "" for PostgreSQL
	pgcfg   *pgx.ConnConfig // PostgreSQL connection settings, for dedicated connections
}

// Dialect reports the engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// String names the database without credentials, for logs.
func (db *DB) String() string { return db.target }

// Open opens the database at cfg.URL, creating it if needed, and applies every
// pending migration. The caller closes it.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(cfg.URL, "sqlite:"):
		db, err = openSQLite(cfg)
	case strings.HasPrefix(cfg.URL, "postgres://"), strings.HasPrefix(cfg.URL, "postgresql://"):
		db, err = openPostgres(ctx, cfg)
	default:
		return nil, fmt.Errorf("open database: unsupported URL %q: want sqlite:<path> or a postgres:// URL", redactURL(cfg.URL))
	}
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", db.target, err)
	}
	if cfg.Migrations != nil {
		if err := db.migrate(ctx, cfg.Migrations, "goose_db_version", cfg.Logger); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// Migrations is a set of migrations with its own version table, so a toolkit
// component (the outbox, the inbox) can bring its tables into any service's
// database. Dialects may differ: Open picks SQLite or Postgres.
type Migrations struct {
	// Table records which of the set's migrations ran, e.g. outbox_schema_version.
	Table string
	// SQLite and Postgres hold the set's goose migrations for each engine.
	SQLite, Postgres fs.FS
}

// Migrate applies a component's migrations.
func (db *DB) Migrate(ctx context.Context, m Migrations, log *slog.Logger) error {
	fsys := m.SQLite
	if db.dialect == Postgres {
		fsys = m.Postgres
	}
	return db.migrate(ctx, fsys, m.Table, log)
}

// SQLitePath returns the file path of a sqlite: URL.
func SQLitePath(rawURL string) (path string, query url.Values, err error) {
	rest := strings.TrimPrefix(rawURL, "sqlite:")
	rest = strings.TrimPrefix(rest, "//")
	path, rawQuery, _ := strings.Cut(rest, "?")
	if path == "" {
		return "", nil, fmt.Errorf("sqlite URL %q has no path", rawURL)
	}
	query, err = url.ParseQuery(rawQuery)
	if err != nil {
		return "", nil, fmt.Errorf("sqlite URL %q: %w", rawURL, err)
	}
	return path, query, nil
}

func openSQLite(cfg Config) (*DB, error) {
	path, q, err := SQLitePath(cfg.URL)
	if err != nil {
		return nil, err
	}
	sync := strings.ToUpper(q.Get("synchronous"))
	switch sync {
	case "":
		sync = "NORMAL" // durable across process crashes in WAL mode; FULL also survives power loss
	case "NORMAL", "FULL":
	default:
		return nil, fmt.Errorf("sqlite URL %q: synchronous must be normal or full", cfg.URL)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	dsn := "file:" + path + "?" + strings.Join([]string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(" + sync + ")",
		"_pragma=foreign_keys(ON)",
		"_txlock=immediate",
	}, "&")
	sqldb := openDB(sqliteConnector{dsn: dsn}, cfg.Tracing, "sqlite", filepath.Base(path))
	n := cfg.MaxOpenConns
	if n <= 0 {
		n = 8
	}
	sqldb.SetMaxOpenConns(n)
	sqldb.SetMaxIdleConns(n)
	return &DB{DB: sqldb, dialect: SQLite, target: "sqlite:" + path, path: path}, nil
}

// openDB opens the pool, through otelsql's driver wrapper when tracing.
func openDB(c driver.Connector, tp trace.TracerProvider, system, namespace string) *sql.DB {
	if tp == nil {
		return sql.OpenDB(c)
	}
	return otelsql.OpenDB(c,
		otelsql.WithTracerProvider(tp),
		otelsql.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelsql.WithAttributes(attribute.String("db.system.name", system), attribute.String("db.namespace", namespace)),
		otelsql.WithSpanNameFormatter(func(_ context.Context, method otelsql.Method, query string) string {
			if op := operation(query); op != "" {
				return op
			}
			switch method {
			case otelsql.MethodConnBeginTx:
				return "BEGIN"
			case otelsql.MethodTxCommit:
				return "COMMIT"
			case otelsql.MethodTxRollback:
				return "ROLLBACK"
			}
			return string(method)
		}),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			DisableQuery:         true,
			OmitConnResetSession: true,
			OmitConnPrepare:      true,
			OmitRows:             true,
			OmitConnectorConnect: true,
			DisableErrSkip:       true,
			SpanFilter: func(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
				return trace.SpanContextFromContext(ctx).IsValid()
			},
		}),
	)
}

// operation names a statement by its verb and first table ("INSERT orders"), the
// low-cardinality span name OpenTelemetry's database conventions ask for.
func operation(query string) string {
	f := strings.Fields(query)
	if len(f) == 0 {
		return ""
	}
	verb := strings.ToUpper(f[0])
	table := func(i int) string { return verb + " " + strings.Trim(f[i], `"(`) }
	if verb == "UPDATE" && len(f) > 1 {
		return table(1)
	}
	// The word before the table: SELECT ... FROM t, DELETE FROM t, INSERT INTO t.
	before := map[string]string{"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO"}[verb]
	for i := 1; before != "" && i+1 < len(f); i++ {
		if strings.EqualFold(f[i], before) {
			return table(i + 1)
		}
	}
	return verb
}

func openPostgres(ctx context.Context, cfg Config) (*DB, error) {
	// pool_max_conns (as pgxpool names it) caps the pool from the URL, so that
	// replicas sharing one server stay within its max_connections. PostgreSQL would
	// refuse it as a run-time parameter, so it is taken out.
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redactURL(cfg.URL), err)
	}
	q := u.Query()
	if v := q.Get("pool_max_conns"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("open database %s: pool_max_conns must be a positive number, got %q", redactURL(cfg.URL), v)
		}
		cfg.MaxOpenConns = n
		q.Del("pool_max_conns")
		u.RawQuery = q.Encode()
		cfg.URL = u.String()
	}
	pcfg, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redactURL(cfg.URL), err)
	}
	target := redactURL(cfg.URL)
	if err := ensurePostgresDatabase(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("open database %s: %w", target, err)
	}
	sqldb := openDB(stdlib.GetConnector(*pcfg), cfg.Tracing, "postgresql", pcfg.Database)
	n := cfg.MaxOpenConns
	if n <= 0 {
		n = 16
	}
	sqldb.SetMaxOpenConns(n)
	sqldb.SetMaxIdleConns(n)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{DB: sqldb, dialect: Postgres, target: target, pgcfg: pcfg}, nil
}

// ensurePostgresDatabase creates the database named in cfg when the server lacks it,
// connecting to the server's maintenance database to do so.
func ensurePostgresDatabase(ctx context.Context, cfg *pgx.ConnConfig) error {
	name := cfg.Database
	if name == "" {
		return errors.New("the URL names no database")
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		// No maintenance database, or no right to it: try the target directly; if it
		// exists we need not create it.
		direct, derr := pgx.ConnectConfig(ctx, cfg)
		if derr != nil {
			return fmt.Errorf("connect: %w", derr)
		}
		return direct.Close(ctx)
	}
	defer func() { _ = conn.Close(ctx) }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look for database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	// A replica creating the same database at the same moment wins the race with
	// duplicate_database, or with a unique violation on the catalog if both passed
	// the existence check together. Either way the database now exists.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

func (db *DB) migrate(ctx context.Context, migrations fs.FS, table string, log *slog.Logger) error {
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithTableName(table)}
	dialect := goose.DialectSQLite3
	if db.dialect == SQLite {
		unlock, err := lockFile(db.path + ".migrate-lock")
		if err != nil {
			return err
		}
		defer unlock()
	} else {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(table)))
		if err != nil {
			return fmt.Errorf("migrate %s: %w", db.target, err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.DB, migrations, opts...)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.target, err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.target, err)
	}
	for _, r := range results {
		if log != nil {
			log.Info("migration applied", "database", db.target, "version", r.Source.Version, "file", filepath.Base(r.Source.Path), "took", r.Duration)
		}
	}
	return nil
}

// InTx runs fn in a transaction and commits it when fn returns nil; otherwise it
// rolls back and returns fn's error.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique or primary-key constraint
// violation on either engine.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Millis converts t to the stored form of a time: Unix milliseconds.
func Millis(t time.Time) int64 { return t.UnixMilli() }

// Time converts stored Unix milliseconds back to a UTC time.
func Time(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// lockID derives the advisory lock of a migration set from its table name.
func lockID(table string) int64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(table); i++ {
		h ^= uint64(table[i])
		h *= 1099511628211
	}
	return int64(h >> 1)
}

// Notifications delivers a value each time a notification arrives on channel
// (PostgreSQL LISTEN), on a dedicated connection, until ctx ends. On SQLite it
// returns nil: SQLite has no notifications; callers poll.
func (db *DB) Notifications(ctx context.Context, channel string) (<-chan struct{}, error) {
	if db.dialect != Postgres {
		return nil, nil
	}
	conn, err := pgx.ConnectConfig(ctx, db.pgcfg)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", channel, err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("listen %s: %w", channel, err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out, nil
}

// TryLeader takes, without waiting, a lock named name that at most one process holds
// across every replica sharing this database: a PostgreSQL advisory lock held on a
// dedicated connection, or on SQLite an exclusive lock on a file beside the
// database. It returns a release function, or ok false when another process leads.
func (db *DB) TryLeader(ctx context.Context, name string) (release func(), ok bool, err error) {
	if db.dialect == SQLite {
		return tryLockFile(db.path + "." + name + "-lock")
	}
	conn, err := pgx.ConnectConfig(ctx, db.pgcfg)
	if err != nil {
		return nil, false, fmt.Errorf("leader %s: %w", name, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockID(name)).Scan(&got); err != nil || !got {
		_ = conn.Close(ctx)
		return nil, false, err
	}
	return func() { _ = conn.Close(context.Background()) }, true, nil
}
