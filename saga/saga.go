// Package saga runs orchestrated sagas: a sequence of steps across services, each
// with a compensation, persisted so that a crash anywhere loses nothing.
//
// A Definition lists the steps. Start records a new instance in the caller's
// transaction (with the caller's own state, so an order and its saga exist together
// or not at all) and runs it. Each step's outcome and the step to run next are
// recorded in one transaction, together with whatever the OnTransition hook writes
// — typically the application's state and its outbox events — so state, next
// command and events never disagree.
//
// Failure model:
//   - A step refuses with Fail (out of stock, card declined): the saga compensates,
//     undoing that step and the ones before it in reverse, and ends compensated
//     with the reason.
//   - Any other error is transient: the step is tried again with backoff, until the
//     saga's deadline; past it, the saga compensates. The deadline bounds the whole
//     saga up to its pivot.
//   - The pivot is the step after which the saga can only go forward (taking the
//     money): from it on, steps are retried, deadline or not. A pivot that refuses
//     compensates like any step; a step after the pivot that refuses leaves the
//     saga stuck, for a person (and `switchyard check`) to see.
//   - Compensations are retried.
//   - A failure that says when to come back — a dependency's Retry-After, as an
//     open circuit breaker gives it — is waited out rather than retried into: the
//     next try comes when the breaker half-opens, never against it.
//   - A step past the pivot, or a compensation, that keeps failing for StuckAfter
//     leaves the saga stuck with the last error as its reason: visible, alerted, and
//     never silently spinning.
//
// Steps and compensations must therefore be idempotent, and a compensation must
// cope with a step that never happened or is still in flight elsewhere (a release
// that arrives before its reservation leaves a marker the reservation respects).
//
// Crash recovery: every instance is leased by the orchestrator running it, which
// renews its leases while alive. An orchestrator that dies stops renewing; after the
// lease another one (or the same service restarted) takes the saga over and
// continues from its recorded step, repeating at most the step that was in flight.
// Writes are fenced by ownership, so a stalled former owner cannot overwrite its
// successor.
//
// No library in Go's ecosystem persists orchestration with this contract on the
// service's own SQL database (Temporal and Cadence are servers of their own), so
// this package is ours; it is about 500 lines.
package saga

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the sagas table; apply them with store.DB.Migrate.
func Migrations() store.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return store.Migrations{Table: "saga_schema_version", SQLite: sub, Postgres: sub}
}

// Status is where a saga instance is.
type Status string

// Statuses. Done, Compensated and Stuck are terminal.
const (
	Running      Status = "running"
	Compensating Status = "compensating"
	Done         Status = "done"
	Compensated  Status = "compensated"
	Stuck        Status = "stuck"
)

// Terminal reports whether a saga in s will change no more.
func (s Status) Terminal() bool { return s == Done || s == Compensated || s == Stuck }

// Failure is a step's refusal: a business outcome, not a fault. Its reason ends up
// on the compensated saga.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return f.Reason }

// Fail returns a step's refusal with a reason for people.
func Fail(format string, args ...any) error {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// Step is one step of a saga.
type Step[T any] struct {
	// Name identifies the step in records, spans and metrics (reserve_stock).
	Name string
	// Do performs the step. It may change data, which is saved with its outcome. It
	// must be idempotent: after a crash it runs again.
	Do func(ctx context.Context, data *T) error
	// Undo compensates Do: idempotent, and harmless when Do never happened or is
	// still in flight. Nil when there is nothing to undo.
	Undo func(ctx context.Context, data *T) error
	// Pivot marks the step from which the saga only goes forward.
	Pivot bool
	// About and UndoAbout say what Do and Undo do, for the design document.
	About, UndoAbout string
	// Unrecorded skips the transaction recording this step's completion: it is
	// recorded with the next step's, in one transaction. A crash in between repeats
	// the step, so it must be cheap to repeat. Allowed only from the pivot on,
	// where a saga never compensates.
	Unrecorded bool
}

// Definition is a kind of saga.
type Definition[T any] struct {
	// Name identifies the kind (order); instances of several kinds can share a table.
	Name  string
	Steps []Step[T]
	// Deadline bounds a saga from its start to its pivot [30s].
	Deadline time.Duration
}

// StepInfo describes a step of a saga kind, for documentation.
type StepInfo struct {
	Name, About, UndoAbout string
	// Compensated says whether the step has an Undo.
	Compensated, Pivot bool
}

// Describe lists the kind's steps in order.
func (d Definition[T]) Describe() []StepInfo {
	out := make([]StepInfo, len(d.Steps))
	for i, s := range d.Steps {
		out[i] = StepInfo{Name: s.Name, About: s.About, UndoAbout: s.UndoAbout, Compensated: s.Undo != nil, Pivot: s.Pivot}
	}
	return out
}

// Change is what happened to a saga in a transition.
type Change string

// Changes.
const (
	ChangeStarted      Change = "started"
	ChangeStepDone     Change = "step_done"
	ChangeCompensating Change = "compensating"
	ChangeStepUndone   Change = "step_undone"
	ChangeDone         Change = "done"
	ChangeCompensated  Change = "compensated"
	ChangeStuck        Change = "stuck"
)

// Transition is one recorded change of a saga, given to the OnTransition hook.
type Transition[T any] struct {
	Saga   string // the definition's name
	ID     string
	Change Change
	// Step is the step done or undone; for Compensating the step that failed.
	Step   string
	Status Status
	Reason string
	Data   *T
	At     time.Time
}

// Config configures an Orchestrator. Zero fields take the default in brackets.
type Config[T any] struct {
	// Owner names this orchestrator in leases [host-pid-random].
	Owner string
	// Lease is how long a saga stays with an orchestrator that stops renewing it:
	// the longest a crashed process's sagas wait to be taken over [5s].
	Lease time.Duration
	// Scan is how often sagas with expired leases are looked for [1s].
	Scan time.Duration
	// MaxConcurrent caps the sagas this orchestrator runs at once [256]. Once as
	// many again wait for a slot, Start refuses new sagas (Unavailable, retry in a
	// second) rather than queue them past their deadlines.
	MaxConcurrent int
	// Backoff and MaxBackoff space the retries of a failing step or compensation
	// (exponential, full jitter) [50ms, 2s].
	Backoff, MaxBackoff time.Duration
	// TryTimeout bounds one try of a step past the pivot or a compensation, which
	// the saga's deadline does not bound [10s].
	TryTimeout time.Duration
	// StuckAfter is how long a step past the pivot, or a compensation, may keep
	// failing before the saga is declared stuck for a person to look at [10m].
	StuckAfter time.Duration
	// Drain bounds how long Run, when stopping, waits for steps in flight [5s].
	Drain time.Duration
	// OnTransition runs inside the transaction recording each transition; an error
	// rolls it back (and the step is tried again).
	OnTransition func(ctx context.Context, tx *sql.Tx, t Transition[T]) error
	Log          *slog.Logger
	Tracer       trace.Tracer
	Metrics      prometheus.Registerer
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Instance is a saga's recorded state.
type Instance[T any] struct {
	ID       string
	Status   Status
	Step     int
	Data     T
	Reason   string
	Deadline time.Time
	Created  time.Time
	Updated  time.Time

	// pending are transitions of unrecorded steps, recorded with the next.
	pending []Transition[T]
}
