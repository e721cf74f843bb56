package saga

import (
	"context"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/store"
)

// Summary is what an operator sees of a saga: where it stands, never its data
// (which may hold what only the steps should see).
type Summary struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	Step     string    `json:"step"`
	Reason   string    `json:"reason,omitempty"`
	Owner    string    `json:"owner,omitempty"`
	Deadline time.Time `json:"deadline"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// List returns up to limit sagas of this kind, most recently updated first; with
// unfinished, only those running, compensating or stuck.
func (o *Orchestrator[T]) List(ctx context.Context, unfinished bool, limit int) ([]Summary, error) {
	q := `SELECT id, status, step, reason, owner, deadline, created_at, updated_at FROM sagas WHERE name = $1`
	if unfinished {
		q += ` AND status IN ('running', 'compensating', 'stuck')`
	}
	rows, err := o.db.QueryContext(ctx, q+` ORDER BY updated_at DESC LIMIT $2`, o.def.Name, limit)
	if err != nil {
		return nil, fmt.Errorf("saga %s: list: %w", o.def.Name, err)
	}
	defer rows.Close()
	out := []Summary{}
	for rows.Next() {
		var (
			sm                         = Summary{Name: o.def.Name}
			step                       int
			deadline, created, updated int64
		)
		if err := rows.Scan(&sm.ID, &sm.Status, &step, &sm.Reason, &sm.Owner, &deadline, &created, &updated); err != nil {
			return nil, fmt.Errorf("saga %s: list: %w", o.def.Name, err)
		}
		if step >= 0 && step < len(o.def.Steps) {
			sm.Step = o.def.Steps[step].Name
		}
		sm.Deadline, sm.Created, sm.Updated = store.Time(deadline), store.Time(created), store.Time(updated)
		out = append(out, sm)
	}
	return out, rows.Err()
}

// Audit reads every saga of any kind in db that is stuck, or unfinished past its
// deadline by more than grace — what an auditor (`switchyard check`) looks for
// after a run. It returns how many unfinished sagas it examined and a sentence for
// each of those found wanting.
func Audit(ctx context.Context, db *store.DB, now time.Time, grace time.Duration) (examined int, findings []string, err error) {
	rows, err := db.QueryContext(ctx, `SELECT id, name, status, step, reason, deadline FROM sagas WHERE status IN ('running', 'compensating', 'stuck') ORDER BY id`)
	if err != nil {
		return 0, nil, fmt.Errorf("saga: audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, name, status, reason string
			step                     int
			deadline                 int64
		)
		if err := rows.Scan(&id, &name, &status, &step, &reason, &deadline); err != nil {
			return 0, nil, fmt.Errorf("saga: audit: %w", err)
		}
		examined++
		switch late := now.Sub(store.Time(deadline)); {
		case status == string(Stuck):
			findings = append(findings, fmt.Sprintf("%s saga %s is stuck: %s", name, id, reason))
		case late > grace:
			findings = append(findings, fmt.Sprintf("%s saga %s is still %s at step %d, %v past its deadline", name, id, status, step, late.Round(time.Second)))
		}
	}
	return examined, findings, rows.Err()
}
