package saga

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

// record writes transitions — the saga's new status and step, its data, and the
// hook's writes for each transition — in one transaction, fenced by ownership.
func (o *Orchestrator[T]) record(ctx context.Context, inst *Instance[T], status Status, step int, ts ...Transition[T]) error {
	raw, err := json.Marshal(&inst.Data)
	if err != nil {
		return fmt.Errorf("saga %s: encode data: %w", o.def.Name, err)
	}
	now := o.cfg.Now()
	ts = append(inst.pending, ts...)
	err = o.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sagas SET status = $1, step = $2, data = $3, reason = $4, updated_at = $5, lease_until = $6
			WHERE id = $7 AND owner = $8`,
			string(status), step, string(raw), inst.Reason, store.Millis(now), store.Millis(now.Add(o.cfg.Lease)), inst.ID, o.cfg.Owner)
		if err != nil {
			return fmt.Errorf("saga %s %s: record %s: %w", o.def.Name, inst.ID, status, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errLost
		}
		for _, t := range ts {
			t.ID, t.Data, t.At, t.Reason = inst.ID, &inst.Data, now, inst.Reason
			t.Status = status
			if err := o.hook(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	inst.Status, inst.Step, inst.pending = status, step, nil
	if status.Terminal() {
		o.metrics.finished.WithLabelValues(string(status)).Inc()
		o.metrics.duration.WithLabelValues(string(status)).Observe(now.Sub(inst.Created).Seconds())
	}
	return nil
}

func (o *Orchestrator[T]) hook(ctx context.Context, tx *sql.Tx, t Transition[T]) error {
	if o.cfg.OnTransition == nil {
		return nil
	}
	t.Saga = o.def.Name
	return o.cfg.OnTransition(ctx, tx, t)
}

// traced runs a step's Do or Undo in a span of the saga's trace, and times it.
func (o *Orchestrator[T]) traced(ctx context.Context, inst *Instance[T], step, action string, fn func(context.Context) error) error {
	ctx, span := o.cfg.Tracer.Start(ctx, "saga "+o.def.Name+" "+action+" "+step, trace.WithAttributes(
		attribute.String(telemetry.KeySaga, o.def.Name),
		attribute.String(telemetry.KeySagaID, inst.ID),
		attribute.String(telemetry.KeySagaStep, step),
		attribute.String(telemetry.KeySagaAction, action),
	))
	start := time.Now()
	err := fn(ctx)
	result := "ok"
	var refusal *Failure
	switch {
	case errors.As(err, &refusal):
		result = "refused"
		span.SetAttributes(attribute.String(telemetry.KeySagaRefusal, refusal.Reason))
	case err != nil:
		result = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	o.metrics.step.WithLabelValues(step, action, result).Observe(time.Since(start).Seconds())
	return err
}
