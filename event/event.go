// Package event is Switchyard's event envelope: CloudEvents 1.0 in structured JSON
// mode, with the extensions every hop needs to be followed and de-duplicated —
// traceparent and tracestate (W3C trace context), correlationid (the request or
// first event a chain of events started from), causationid (the event this one was
// caused by) and idempotencykey (the key the originating request carried).
//
// Event types are named <domain>.<entity>.<past-tense verb>.v<N>
// (orders.order.placed.v1) and travel on the subject events.<domain>.<entity>.<verb>.
// Every type has a JSON Schema for its data in api/events; a Registry validates
// events against them when they are produced and when they are consumed.
package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"

	"github.com/switchyard/switchyard/internal/strictjson"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// ContentType is the media type of an event in structured mode.
const ContentType = "application/cloudevents+json"

// Event is one CloudEvents 1.0 event.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Type            string    `json:"type"`
	Source          string    `json:"source"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// DataSchema is the URI of the schema the data follows: the $id of its type's
	// schema, filled in by Registry.Prepare when publishing.
	DataSchema string          `json:"dataschema,omitempty"`
	Data       json.RawMessage `json:"data"`

	TraceParent    string `json:"traceparent,omitempty"`
	TraceState     string `json:"tracestate,omitempty"`
	CorrelationID  string `json:"correlationid,omitempty"`
	CausationID    string `json:"causationid,omitempty"`
	IdempotencyKey string `json:"idempotencykey,omitempty"`
}

// Type is a parsed event type.
type Type struct {
	Domain, Entity, Verb string
	Version              int
}

// parsed caches ParseType: a process sees a handful of types, millions of times.
var parsed sync.Map // string → Type

// ParseType parses and checks an event type name, <domain>.<entity>.<past-tense
// verb>.v<N>: lower-case words of letters, digits and underscores, each starting with
// a letter, and a version from 1.
func ParseType(s string) (Type, error) {
	if t, ok := parsed.Load(s); ok {
		return t.(Type), nil
	}
	bad := fmt.Errorf("event type %q is not <domain>.<entity>.<past-tense verb>.v<N>", s)
	parts := strings.Split(s, ".")
	if len(parts) != 4 || len(s) > 200 {
		return Type{}, bad
	}
	for _, w := range parts[:3] {
		if !word(w) {
			return Type{}, bad
		}
	}
	v, err := strconv.Atoi(strings.TrimPrefix(parts[3], "v"))
	if !strings.HasPrefix(parts[3], "v") || err != nil || v < 1 || parts[3][1] == '0' || strconv.Itoa(v) != parts[3][1:] {
		return Type{}, bad
	}
	t := Type{Domain: parts[0], Entity: parts[1], Verb: parts[2], Version: v}
	parsed.Store(s, t)
	return t, nil
}

func wordChar(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' }

func word(w string) bool {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return false
	}
	for i := 1; i < len(w); i++ {
		if c := w[i]; !wordChar(c) {
			return false
		}
	}
	return true
}

// Subject is the broker subject of events of this type: events.<domain>.<entity>.<verb>.
// Versions share a subject; consumers tell them apart by type.
func (t Type) Subject() string { return "events." + t.Domain + "." + t.Entity + "." + t.Verb }

// String is the type's name.
func (t Type) String() string {
	return fmt.Sprintf("%s.%s.%s.v%d", t.Domain, t.Entity, t.Verb, t.Version)
}

// BrokerSubject is the broker subject the event travels on.
func (e *Event) BrokerSubject() string {
	t, err := ParseType(e.Type)
	if err != nil {
		return ""
	}
	return t.Subject()
}

// Domain is the event type's domain (the stream or topic it belongs to).
func (e *Event) Domain() string {
	d, _, _ := strings.Cut(e.Type, ".")
	return d
}

// Validate checks the envelope and that the data is JSON naming no key twice in an
// object (not its schema; see Registry).
func (e *Event) Validate() error {
	if err := e.validateEnvelope(); err != nil {
		return err
	}
	if !json.Valid(e.Data) {
		return errors.New("data is not JSON")
	}
	if err := strictjson.Check(e.Data); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return nil
}

// validateEnvelope checks every attribute but the data's content.
func (e *Event) validateEnvelope() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if e.SpecVersion != SpecVersion {
		bad("specversion %q is not %s", e.SpecVersion, SpecVersion)
	}
	if _, err := uuid.Parse(e.ID); err != nil {
		bad("id %q is not a UUID", e.ID)
	}
	if _, err := ParseType(e.Type); err != nil {
		bad("%v", err)
	}
	if e.Source == "" {
		bad("source is required")
	}
	if e.Subject == "" || len(e.Subject) > 256 {
		bad("subject (the aggregate id) is required, at most 256 characters")
	}
	if e.Time.IsZero() {
		bad("time is required")
	}
	if e.DataContentType != "application/json" {
		bad("datacontenttype %q is not application/json", e.DataContentType)
	}
	if len(e.Data) == 0 {
		bad("data is missing")
	}
	if e.DataSchema != "" {
		if u, err := url.Parse(e.DataSchema); err != nil || !u.IsAbs() {
			bad("dataschema %q is not an absolute URI", e.DataSchema)
		}
	}
	return errors.Join(errs...)
}

// Context carried from a handled event to the events its handler produces.
type causeKey struct{}

type cause struct{ id, correlation, key string }

// WithCause marks ctx as handling e: events created with it name e as their cause
// and share its correlation id and idempotency key.
func WithCause(ctx context.Context, e *Event) context.Context {
	correlation := e.CorrelationID
	if correlation == "" {
		correlation = e.ID
	}
	return context.WithValue(ctx, causeKey{}, cause{id: e.ID, correlation: correlation, key: e.IdempotencyKey})
}

type correlationKey struct{}

// WithCorrelation sets the correlation id (and idempotency key, when not empty) of
// events created with ctx when no event caused them: the request id of the HTTP
// request that started the chain, and the Idempotency-Key it carried.
func WithCorrelation(ctx context.Context, id, idempotencyKey string) context.Context {
	return context.WithValue(ctx, correlationKey{}, cause{correlation: id, key: idempotencyKey})
}

// NewID returns a new time-ordered unique id (a UUIDv7), as events carry: handy for
// an aggregate created with its first event.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// New creates an event of type typ about subject (the aggregate id) from source
// (/switchyard/<service>), with a UUIDv7 id, the current time, data as JSON, the
// trace context of ctx, and its cause and correlation.
func New(ctx context.Context, source, typ, subject string, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("event %s: data: %w", typ, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, err
	}
	e := Event{
		SpecVersion:     SpecVersion,
		ID:              id.String(),
		Type:            typ,
		Source:          source,
		Subject:         subject,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            raw,
	}
	if c, ok := ctx.Value(causeKey{}).(cause); ok {
		e.CausationID, e.CorrelationID, e.IdempotencyKey = c.id, c.correlation, c.key
	} else if c, ok := ctx.Value(correlationKey{}).(cause); ok {
		e.CorrelationID, e.IdempotencyKey = c.correlation, c.key
	}
	if e.CorrelationID == "" {
		e.CorrelationID = e.ID
	}
	SetTraceContext(ctx, &e)
	if err := e.Validate(); err != nil {
		return Event{}, fmt.Errorf("event %s: %w", typ, err)
	}
	return e, nil
}

var propagator = propagation.TraceContext{}

// SetTraceContext writes the trace context of ctx into e.
func SetTraceContext(ctx context.Context, e *Event) {
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	e.TraceParent, e.TraceState = carrier["traceparent"], carrier["tracestate"]
}

// TraceContext returns ctx carrying the trace context recorded in e.
func TraceContext(ctx context.Context, e *Event) context.Context {
	if e.TraceParent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": e.TraceParent, "tracestate": e.TraceState})
}

// Unmarshal parses an event in structured JSON mode without checking it; validate
// it with Validate or a Registry.
func Unmarshal(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("not a CloudEvents JSON event: %w", err)
	}
	if err := strictjson.Check(b); err != nil {
		// An attribute or a data field twice: this reader would take the last, another
		// consumer the first — two consumers, two different events.
		return e, fmt.Errorf("not a CloudEvents JSON event: %w", err)
	}
	return e, nil
}

// Decode parses an event in structured JSON mode and checks its envelope.
func Decode(b []byte) (Event, error) {
	e, err := Unmarshal(b)
	if err != nil {
		return e, err
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}

// Encode writes e in structured JSON mode.
func Encode(e *Event) ([]byte, error) { return json.Marshal(e) }

// DecodeData unmarshals e's data into v.
func (e *Event) DecodeData(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s %s: data: %w", e.Type, e.ID, err)
	}
	return nil
}
