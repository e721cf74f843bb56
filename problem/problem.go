// Package problem is Switchyard's one error vocabulary and its translation at the HTTP
// edge into RFC 9457 problem details (application/problem+json).
//
// Domain code returns an *Error of a [Kind] (or wraps one with fmt.Errorf("...: %w"));
// [Write] is the single place that turns any error into a status code and a body.
// The client sees the kind's title and the error's Detail, which must be safe to show;
// the wrapped cause is logged, never sent. An error that is not an *Error is an
// internal error: the client gets a generic 500 and the log gets the detail.
package problem

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Kind classifies an error by what the caller can do about it.
type Kind uint8

// The kinds, each with one HTTP status.
const (
	Internal        Kind = iota // 500: our fault; the detail is logged only
	Invalid                     // 400: the request is malformed or fails validation
	Unauthenticated             // 401: no valid credentials
	Forbidden                   // 403: valid credentials, not allowed
	NotFound                    // 404: no such resource (or not yours)
	Conflict                    // 409: clashes with the current state (e.g. duplicate)
	TooLarge                    // 413: the body is over the limit
	Unsupported                 // 415: the body is not in a media type we accept
	Unprocessable               // 422: well-formed but cannot be applied (e.g. key reuse)
	RateLimited                 // 429: slow down; see RetryAfter
	Unavailable                 // 503: try again later; see RetryAfter
	Timeout                     // 504: a deadline passed before the work finished
	Canceled                    // 499: the caller went away
)

var kinds = [...]struct {
	status int
	slug   string
	title  string
}{
	Internal:        {http.StatusInternalServerError, "internal", "Internal error"},
	Invalid:         {http.StatusBadRequest, "invalid-request", "Invalid request"},
	Unauthenticated: {http.StatusUnauthorized, "unauthenticated", "Authentication required"},
	Forbidden:       {http.StatusForbidden, "forbidden", "Forbidden"},
	NotFound:        {http.StatusNotFound, "not-found", "Not found"},
	Conflict:        {http.StatusConflict, "conflict", "Conflict"},
	TooLarge:        {http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	Unsupported:     {http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type"},
	Unprocessable:   {http.StatusUnprocessableEntity, "unprocessable", "Unprocessable request"},
	RateLimited:     {http.StatusTooManyRequests, "rate-limited", "Too many requests"},
	Unavailable:     {http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	Timeout:         {http.StatusGatewayTimeout, "timeout", "Timed out"},
	Canceled:        {499, "canceled", "Request canceled"},
}

// KindForStatus is the kind whose status is status: how a problem answer from
// another service is read back. Unknown 4xx statuses read as Invalid, unknown 5xx
// as Unavailable.
func KindForStatus(status int) Kind {
	for k, v := range kinds {
		if v.status == status {
			return Kind(k)
		}
	}
	if status >= 500 {
		return Unavailable
	}
	return Invalid
}

// FromResponse reads another service's error answer back into an Error of the
// kind its status says, its problem document's detail kept (or the status text,
// when the body is no problem document). It reads at most 64 KiB of the body and
// leaves closing it to the caller.
func FromResponse(resp *http.Response) *Error {
	var d Details
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&d)
	if d.Detail == "" {
		d.Detail = http.StatusText(resp.StatusCode)
	}
	return &Error{Kind: KindForStatus(resp.StatusCode), Detail: d.Detail}
}

// Status is the HTTP status of k.
func (k Kind) Status() int { return kinds[k].status }

// String is the kind's short name, also the last part of its problem type URI.
func (k Kind) String() string { return kinds[k].slug }

// TypeURI identifies the kind in a problem document's "type" member.
func (k Kind) TypeURI() string { return "urn:switchyard:problem:" + kinds[k].slug }

// Error is an error of a Kind with a detail safe to show to the caller.
type Error struct {
	// Kind decides the status code.
	Kind Kind
	// Detail is shown to the caller: say what is wrong and how to fix it, never
	// internal state.
	Detail string
	// Fields lists per-field problems of an Invalid request.
	Fields []Field
	// RetryAfter, when positive, becomes a Retry-After header.
	RetryAfter time.Duration
	// Err is the cause, for the log and for errors.Is/As; never shown.
	Err error
}

// Field is one invalid field of a request.
type Field struct {
	// Name is the JSON field path, e.g. "items[0].quantity".
	Name string `json:"name"`
	// Detail says what is wrong with it.
	Detail string `json:"detail"`
}

func (e *Error) Error() string {
	msg := e.Kind.String()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	for _, f := range e.Fields {
		msg += fmt.Sprintf("; %s: %s", f.Name, f.Detail)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, problem.NotFound-kind sentinel) work: two *Error values
// match when their kinds do and the target has no detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Detail == "" && t.Err == nil && len(t.Fields) == 0
}

// Sentinels for errors.Is: errors.Is(err, problem.ErrNotFound) is true for any
// NotFound error.
var (
	ErrInvalid         = &Error{Kind: Invalid}
	ErrUnauthenticated = &Error{Kind: Unauthenticated}
	ErrForbidden       = &Error{Kind: Forbidden}
	ErrNotFound        = &Error{Kind: NotFound}
	ErrConflict        = &Error{Kind: Conflict}
	ErrUnavailable     = &Error{Kind: Unavailable}
)

// New returns an error of kind with a formatted detail.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind whose cause is err; detail is what the caller sees.
func Wrap(kind Kind, err error, detail string) *Error {
	return &Error{Kind: kind, Detail: detail, Err: err}
}

// InvalidField returns an Invalid error about one field.
func InvalidField(name, format string, args ...any) *Error {
	d := fmt.Sprintf(format, args...)
	return &Error{Kind: Invalid, Detail: name + ": " + d, Fields: []Field{{Name: name, Detail: d}}}
}

// KindOf classifies any error: the Kind of the first *Error in its chain; Timeout
// for context.DeadlineExceeded; Canceled for context.Canceled; Internal otherwise.
func KindOf(err error) Kind {
	var e *Error
	switch {
	case err == nil:
		return Internal
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	case errors.Is(err, context.Canceled):
		return Canceled
	default:
		return Internal
	}
}

// Details is the RFC 9457 problem document.
type Details struct {
	Type     string  `json:"type"`
	Title    string  `json:"title"`
	Status   int     `json:"status"`
	Detail   string  `json:"detail,omitempty"`
	Instance string  `json:"instance,omitempty"`
	Errors   []Field `json:"errors,omitempty"`
	// RequestID lets a user quote the request to an operator, who finds its log lines.
	RequestID string `json:"request_id,omitempty"`
}

// From builds the problem document for err without writing it.
func From(err error) Details {
	kind := KindOf(err)
	d := Details{Type: kind.TypeURI(), Title: kinds[kind].title, Status: kind.Status()}
	var e *Error
	if errors.As(err, &e) {
		d.Detail = e.Detail
		d.Errors = e.Fields
	}
	if kind == Timeout && d.Detail == "" {
		d.Detail = "the request did not finish within its deadline"
	}
	return d
}

// RequestIDFunc extracts the request id to quote in problem documents; the
// telemetry middleware installs one. Nil means none.
type RequestIDFunc func(context.Context) string

// Writer writes problem documents for one service.
type Writer struct {
	// Log receives the full error of every 5xx (and, at debug level, of 4xx).
	Log *slog.Logger
	// RequestID, when set, fills the document's request_id.
	RequestID RequestIDFunc
}

// Write translates err into a problem response. Internal errors are logged with
// their cause; the client sees only the generic title.
func (pw Writer) Write(w http.ResponseWriter, r *http.Request, err error) {
	d := From(err)
	d.Instance = r.URL.Path
	if pw.RequestID != nil {
		d.RequestID = pw.RequestID(r.Context())
	}
	if pw.Log != nil {
		level := slog.LevelDebug
		if d.Status >= 500 {
			level = slog.LevelError
		}
		pw.Log.Log(r.Context(), level, "request failed", "status", d.Status, "error", err.Error())
	}
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	WriteDetails(w, d)
}

// WriteDetails writes a prepared problem document.
func WriteDetails(w http.ResponseWriter, d Details) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(d.Status)
	_ = json.NewEncoder(w).Encode(d) // the status is out; a failed body write is the client's loss
}
