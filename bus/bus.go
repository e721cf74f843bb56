// Package bus moves events between services: publish, and deliver to durable
// consumer groups. Two implementations share this contract and its conformance suite
// (bustest): natsbus (NATS JetStream; the default) and kafkabus (Kafka, franz-go).
//
// Delivery is at least once. A consumer group is durable (it resumes where it left
// off) and competing (each event goes to one member). A handler's outcome decides
// what happens next:
//
//   - nil: the event is acknowledged;
//   - an error made with Retry: it is delivered again after the given delay;
//   - an error made with Permanent, or an event that breaks its schema: it goes to the
//     dead letters at once;
//   - any other error: it is delivered again after an exponential backoff, and after
//     MaxAttempts deliveries it goes to the dead letters.
//
// Retries never hold up the events behind them. Dead letters keep the original event
// (id and trace context included), the subject, the consumer group, the number of
// attempts, the last error, and the times of the first and last failure; replaying one
// publishes the same event again. Handlers make their effects idempotent with the
// inbox package, so a redelivery is harmless.
//
// Subscribe blocks until its context ends, then drains: it stops pulling, lets the
// handlers in flight finish, and returns.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/problem"
)

// Bus publishes and delivers events.
type Bus interface {
	// Publish stores events on the broker, in order, and returns once all are
	// stored. Each must pass the schema registry. Safe for concurrent use.
	Publish(ctx context.Context, events ...event.Event) error

	// Subscribe delivers events of sub.Types to handler as a member of sub.Group
	// until ctx ends, then drains and returns nil. It returns early with an error
	// only when the subscription cannot be set up.
	Subscribe(ctx context.Context, sub Subscription, handler Handler) error
}

// Encoded is an event already validated and encoded in structured JSON, as the
// outbox stores it.
type Encoded struct {
	ID, Type, Subject string
	Payload           []byte
}

// ErrNoDeadLetter is wrapped by DeadLetters.Get and Replay for an id that names no
// dead letter (or is not an id at all); it is a problem.NotFound.
var ErrNoDeadLetter = &problem.Error{Kind: problem.NotFound, Detail: "no such dead letter"}

// DeadLetters is the dead-letter store of a broker.
type DeadLetters interface {
	// List returns up to limit dead letters, oldest first, optionally only those of
	// one consumer group.
	List(ctx context.Context, group string, limit int) ([]DeadLetter, error)
	// Get returns one dead letter by its id.
	Get(ctx context.Context, id string) (DeadLetter, error)
	// Replay publishes the dead letter's event again (same id, same trace context)
	// and removes it from the dead letters.
	Replay(ctx context.Context, id string) error
	// Purge removes one dead letter, or all of a group's ("" for every group) when id
	// is empty. It returns how many it removed.
	Purge(ctx context.Context, group, id string) (int, error)
}

// Subscription says what a consumer group receives and how it retries.
type Subscription struct {
	// Group is the durable consumer group, e.g. "catalog". Required.
	Group string
	// Types are the event types to receive. Required.
	Types []string
	// Concurrency is how many events are handled at once [1]. With 1, events of one
	// subject (aggregate) are handled in the order they were published.
	Concurrency int
	// MaxAttempts deliveries before an event goes to the dead letters [5].
	MaxAttempts int
	// Backoff before the first redelivery [500ms]; it doubles, up to MaxBackoff [30s].
	Backoff, MaxBackoff time.Duration
	// HandlerTimeout bounds one delivery; past it the broker redelivers [30s].
	HandlerTimeout time.Duration
}

// Defaults fills zero fields.
func (s *Subscription) Defaults() {
	if s.Concurrency <= 0 {
		s.Concurrency = 1
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 5
	}
	if s.Backoff <= 0 {
		s.Backoff = 500 * time.Millisecond
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.HandlerTimeout <= 0 {
		s.HandlerTimeout = 30 * time.Second
	}
}

// Validate reports a subscription that cannot work.
func (s *Subscription) Validate() error {
	if s.Group == "" {
		return errors.New("bus: subscription needs a group")
	}
	if len(s.Types) == 0 {
		return errors.New("bus: subscription needs event types")
	}
	for _, t := range s.Types {
		if _, err := event.ParseType(t); err != nil {
			return fmt.Errorf("bus: %w", err)
		}
	}
	return nil
}

// BackoffFor is the delay before delivery attempt+1.
func (s *Subscription) BackoffFor(attempt int) time.Duration {
	d := s.Backoff << min(max(attempt-1, 0), 20)
	if d > s.MaxBackoff || d <= 0 {
		d = s.MaxBackoff
	}
	return d
}

// Message is one delivery of an event.
type Message struct {
	// Event is the event, validated against its schema.
	Event event.Event
	// Attempt counts deliveries to this group, from 1.
	Attempt int
	// Subject is the broker subject it came on.
	Subject string
}

// Handler handles one delivery. ctx carries the event's trace context and its cause
// (event.WithCause), and ends at the subscription's HandlerTimeout.
type Handler func(ctx context.Context, msg *Message) error

type retryError struct {
	after time.Duration
	err   error
}

func (e *retryError) Error() string { return fmt.Sprintf("retry after %s: %v", e.after, e.err) }
func (e *retryError) Unwrap() error { return e.err }

// Retry asks for the event to be delivered again after the given delay.
func Retry(after time.Duration, err error) error { return &retryError{after: after, err: err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent sends the event to the dead letters at once: retrying cannot help.
func Permanent(err error) error { return &permanentError{err: err} }

// IsPermanent reports whether err asks for dead-lettering without retries.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RetryAfter returns the delay a Retry error asked for.
func RetryAfter(err error) (time.Duration, bool) {
	var r *retryError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// DeadLetter is an event a consumer group gave up on.
type DeadLetter struct {
	// ID identifies the dead letter in its store (not the event's id).
	ID string `json:"id"`
	// Event is the original event, trace context included.
	Event event.Event `json:"event"`
	// Subject is the broker subject the event came on.
	Subject string `json:"subject"`
	// Group is the consumer group that gave up.
	Group string `json:"group"`
	// Attempts is how many deliveries were made.
	Attempts int `json:"attempts"`
	// LastError is the last handler error (or why the event was refused).
	LastError string `json:"last_error"`
	// FirstFailure and LastFailure are when delivery first and last failed.
	FirstFailure time.Time `json:"first_failure"`
	LastFailure  time.Time `json:"last_failure"`
	// Raw is the original message when it could not be decoded as an event.
	Raw []byte `json:"raw,omitempty"`
}

// Verdict is what becomes of a delivery.
type Verdict int

// The verdicts.
const (
	Ack       Verdict = iota // handled: acknowledge it
	Redeliver                // deliver it again after a delay
	Bury                     // give up: move it to the dead letters
)
