package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
)

// With tracing on, each statement inside a traced request is a client span named
// by its verb and table, carrying the engine and never the statement's text; work
// outside any trace (pollers, migrations) records nothing.
func TestStatementsInsideARequestAreSpans(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		spans := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
		db, err := store.Open(context.Background(), store.Config{URL: url, Migrations: migrations(t), Tracing: tp})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if n := len(spans.GetSpans()); n != 0 {
			t.Fatalf("migrations outside a trace recorded %d spans", n)
		}
		ctx, req := tp.Tracer("t").Start(context.Background(), "request")
		if _, err := db.ExecContext(ctx, "INSERT INTO accounts (id, email, name, created_at) VALUES ($1, $2, $3, $4)",
			"a1", "ann@example.com", "Ann", store.Millis(time.Now())); err != nil {
			t.Fatal(err)
		}
		var name string
		if err := db.QueryRowContext(ctx, "SELECT name FROM accounts WHERE id = $1", "a1").Scan(&name); err != nil {
			t.Fatal(err)
		}
		req.End()
		if _, err := db.ExecContext(context.Background(), "UPDATE accounts SET name = $1", "Anne"); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range spans.GetSpans() {
			if s.Name == "request" {
				continue
			}
			names = append(names, s.Name)
			if s.Parent.SpanID() != req.SpanContext().SpanID() {
				t.Errorf("%s is not a child of the request", s.Name)
			}
			var system string
			for _, a := range s.Attributes {
				if a.Key == "db.system.name" {
					system = a.Value.AsString()
				}
				if a.Key == "db.query.text" || a.Key == "db.statement" {
					t.Errorf("%s carries the statement text", s.Name)
				}
			}
			if system != "sqlite" && system != "postgresql" {
				t.Errorf("%s: db.system.name %q", s.Name, system)
			}
		}
		if !slices.Equal(names, []string{"INSERT accounts", "SELECT accounts"}) {
			t.Errorf("spans %v, want INSERT accounts, SELECT accounts (and nothing for the untraced UPDATE)", names)
		}
	})
}
