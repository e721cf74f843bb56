package saga

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/switchyard/switchyard/problem"
)

// errLost means another orchestrator owns the saga now.
var errLost = errors.New("saga lease lost")

// run drives inst until it is terminal, the lease is lost or the orchestrator stops.
func (o *Orchestrator[T]) run(ctx context.Context, inst *Instance[T]) {
	failures := 0
	var failingSince time.Time
	defer func() {
		if failures > 0 {
			o.metrics.retrying.Dec()
		}
	}()
	for !inst.Status.Terminal() {
		if o.isStopping() {
			return
		}
		var err error
		if inst.Status == Running {
			err = o.forward(ctx, inst)
		} else {
			err = o.backward(ctx, inst)
		}
		switch {
		case err == nil:
			if failures > 0 {
				o.metrics.retrying.Dec()
			}
			failures = 0
		case errors.Is(err, errLost):
			o.cfg.Log.Warn("saga taken over by another orchestrator", "saga", o.def.Name, "id", inst.ID)
			return
		default:
			if failures == 0 {
				failingSince = time.Now()
				o.metrics.retrying.Inc()
			}
			failures++
			if o.bounded(inst) && time.Since(failingSince) >= o.cfg.StuckAfter {
				o.giveUp(ctx, inst, time.Since(failingSince), err)
				continue
			}
			if failures%10 == 1 {
				o.cfg.Log.Warn("saga step failed; trying again", "saga", o.def.Name, "id", inst.ID,
					"status", inst.Status, "tries", failures, "error", err)
			}
			if !o.wait(o.pause(inst, failures, err)) {
				return
			}
		}
	}
}

// bounded reports whether inst is where failures can leave it stuck: at or past the
// pivot, or compensating. Before the pivot the deadline bounds it instead.
func (o *Orchestrator[T]) bounded(inst *Instance[T]) bool {
	return inst.Status == Compensating || inst.Step >= o.pivot
}

// giveUp declares inst stuck after its step failed for so long.
func (o *Orchestrator[T]) giveUp(ctx context.Context, inst *Instance[T], failing time.Duration, err error) {
	name := "the end"
	if inst.Step >= 0 && inst.Step < len(o.def.Steps) {
		name = o.def.Steps[inst.Step].Name
	}
	action := ""
	if inst.Status == Compensating {
		action = "undoing "
	}
	inst.Reason = fmt.Sprintf("%s%s kept failing for %s: %v", action, name, failing.Round(time.Second), err)
	o.cfg.Log.Error("a saga is stuck: its step keeps failing", "saga", o.def.Name, "id", inst.ID, "step", name, "reason", inst.Reason)
	if rerr := o.record(ctx, inst, Stuck, inst.Step, Transition[T]{Change: ChangeStuck, Step: name}); rerr != nil && !errors.Is(rerr, errLost) {
		o.cfg.Log.Warn("record a stuck saga", "saga", o.def.Name, "id", inst.ID, "error", rerr)
		o.wait(o.cfg.MaxBackoff)
	}
}

// pause is the wait after n failures: the backoff (exponential, full jitter), or
// the failure's own Retry-After when longer — an open breaker says when it will
// let a probe through, so the next try lands then instead of against it — spread a
// little so that many sagas do not come back at the same instant. A saga before its
// pivot never waits past its deadline.
func (o *Orchestrator[T]) pause(inst *Instance[T], n int, err error) time.Duration {
	ceiling := o.cfg.Backoff << min(n-1, 16)
	if ceiling > o.cfg.MaxBackoff || ceiling <= 0 {
		ceiling = o.cfg.MaxBackoff
	}
	d := mrand.N(ceiling) + time.Millisecond
	if hint := retryAfter(err); hint > d {
		d = min(hint+mrand.N(hint/10+time.Millisecond), time.Minute)
	}
	if inst.Status == Running && inst.Step < o.pivot {
		d = min(d, max(time.Until(inst.Deadline), time.Millisecond))
	}
	return d
}

// retryAfter is how long a failure asks to be left alone, if it says.
func retryAfter(err error) time.Duration {
	var p *problem.Error
	if errors.As(err, &p) {
		return p.RetryAfter
	}
	return 0
}

// wait sleeps d, or until the orchestrator stops (false).
func (o *Orchestrator[T]) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-o.stopped:
		return false
	}
}

// forward runs the next step of a running saga and records its outcome.
func (o *Orchestrator[T]) forward(ctx context.Context, inst *Instance[T]) error {
	if inst.Step >= len(o.def.Steps) {
		return o.record(ctx, inst, Done, inst.Step, Transition[T]{Change: ChangeDone})
	}
	step := o.def.Steps[inst.Step]
	beforePivot := inst.Step < o.pivot
	if beforePivot && !o.cfg.Now().Before(inst.Deadline) {
		return o.compensate(ctx, inst, step.Name, "timed out before "+step.Name)
	}
	var (
		stepCtx context.Context
		cancel  context.CancelFunc
	)
	if beforePivot {
		stepCtx, cancel = context.WithDeadline(ctx, inst.Deadline)
	} else {
		stepCtx, cancel = context.WithTimeout(ctx, o.cfg.TryTimeout)
	}
	data := inst.Data
	err := o.traced(stepCtx, inst, step.Name, "do", func(ctx context.Context) error { return step.Do(ctx, &data) })
	cancel()
	var refusal *Failure
	switch {
	case err == nil:
		inst.Data = data
		done := Transition[T]{Change: ChangeStepDone, Step: step.Name}
		if next := inst.Step + 1; next < len(o.def.Steps) {
			if step.Unrecorded {
				inst.pending = append(inst.pending, done)
				inst.Step = next
				return nil
			}
			return o.record(ctx, inst, Running, next, done)
		}
		// The last step and the end of the saga, in one transaction.
		return o.record(ctx, inst, Done, len(o.def.Steps), done, Transition[T]{Change: ChangeDone})
	case errors.As(err, &refusal):
		if inst.Step > o.pivot {
			o.cfg.Log.Error("a step past the pivot refused; the saga is stuck", "saga", o.def.Name, "id", inst.ID, "step", step.Name, "reason", refusal.Reason)
			inst.Reason = fmt.Sprintf("%s refused after the pivot: %s", step.Name, refusal.Reason)
			return o.record(ctx, inst, Stuck, inst.Step, Transition[T]{Change: ChangeStuck, Step: step.Name})
		}
		return o.compensate(ctx, inst, step.Name, refusal.Reason)
	case beforePivot && !o.cfg.Now().Before(inst.Deadline):
		return o.compensate(ctx, inst, step.Name, fmt.Sprintf("timed out in %s: %v", step.Name, err))
	default:
		return fmt.Errorf("%s: %w", step.Name, err)
	}
}

// compensate turns a running saga around at the step that failed, which is undone
// too: it may have happened in part, or still be in flight.
func (o *Orchestrator[T]) compensate(ctx context.Context, inst *Instance[T], failed, reason string) error {
	inst.Reason = reason
	return o.record(ctx, inst, Compensating, inst.Step, Transition[T]{Change: ChangeCompensating, Step: failed})
}

// backward undoes the next step of a compensating saga and records it.
func (o *Orchestrator[T]) backward(ctx context.Context, inst *Instance[T]) error {
	if inst.Step < 0 {
		return o.record(ctx, inst, Compensated, -1, Transition[T]{Change: ChangeCompensated})
	}
	step := o.def.Steps[inst.Step]
	if step.Undo != nil {
		tryCtx, cancel := context.WithTimeout(ctx, o.cfg.TryTimeout)
		data := inst.Data
		err := o.traced(tryCtx, inst, step.Name, "undo", func(ctx context.Context) error { return step.Undo(ctx, &data) })
		cancel()
		if err != nil {
			return fmt.Errorf("undo %s: %w", step.Name, err)
		}
		inst.Data = data
	}
	undone := Transition[T]{Change: ChangeStepUndone, Step: step.Name}
	if inst.Step == 0 {
		return o.record(ctx, inst, Compensated, -1, undone, Transition[T]{Change: ChangeCompensated})
	}
	return o.record(ctx, inst, Compensating, inst.Step-1, undone)
}
