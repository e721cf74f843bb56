package problem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/problem"
)

func TestErrorsTranslateToProblemDocuments(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        error
		status     int
		detail     string
		retryAfter string
	}{
		{"a domain error keeps its safe detail", problem.New(problem.NotFound, "no product %q", "p-1"), 404, `no product "p-1"`, ""},
		{"a wrapped domain error keeps its kind", fmt.Errorf("load order: %w", problem.New(problem.Conflict, "email taken")), 409, "email taken", ""},
		{"an unknown error is internal and says nothing", errors.New("pq: password authentication failed for user app"), 500, "", ""},
		{"a deadline is a timeout", fmt.Errorf("call users: %w", context.DeadlineExceeded), 504, "the request did not finish within its deadline", ""},
		{"retry-after rounds up to whole seconds", &problem.Error{Kind: problem.Unavailable, Detail: "breaker open", RetryAfter: 1500 * time.Millisecond}, 503, "breaker open", "2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			pw := problem.Writer{Log: slog.New(slog.NewJSONHandler(&logs, nil)), RequestID: func(context.Context) string { return "req-1" }}
			rec := httptest.NewRecorder()
			pw.Write(rec, httptest.NewRequest("GET", "/v1/things/1?token=secret", nil), tc.err)

			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type = %q", ct)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			var d problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			if d.Status != tc.status || d.Detail != tc.detail || d.Instance != "/v1/things/1" || d.RequestID != "req-1" || !strings.HasPrefix(d.Type, "urn:switchyard:problem:") || d.Title == "" {
				t.Errorf("document = %+v", d)
			}
			if tc.status == 500 {
				if strings.Contains(rec.Body.String(), "password") {
					t.Errorf("internal detail leaked to the client: %s", rec.Body)
				}
				if !strings.Contains(logs.String(), "password authentication failed") {
					t.Errorf("internal detail missing from the log: %s", logs.String())
				}
			}
		})
	}
}

func TestKindSentinelsMatchWithErrorsIs(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("get user: %w", problem.New(problem.NotFound, "no user 42"))
	if !errors.Is(err, problem.ErrNotFound) {
		t.Error("errors.Is(NotFound error, ErrNotFound) = false")
	}
	if errors.Is(err, problem.ErrConflict) {
		t.Error("a NotFound error matched ErrConflict")
	}
}

func TestInvalidFieldListsTheField(t *testing.T) {
	t.Parallel()
	d := problem.From(problem.InvalidField("email", "not an email address"))
	if d.Status != 400 || len(d.Errors) != 1 || d.Errors[0].Name != "email" {
		t.Errorf("got %+v", d)
	}
}

func TestKindForStatusReadsProblemAnswersBack(t *testing.T) {
	for _, k := range []problem.Kind{problem.Invalid, problem.Unauthenticated, problem.Forbidden, problem.NotFound,
		problem.Conflict, problem.TooLarge, problem.RateLimited, problem.Unavailable, problem.Timeout, problem.Internal} {
		if got := problem.KindForStatus(k.Status()); got != k {
			t.Errorf("KindForStatus(%d) = %v, want %v", k.Status(), got, k)
		}
	}
	if got := problem.KindForStatus(418); got != problem.Invalid {
		t.Errorf("an unknown 4xx reads as %v, want invalid-request", got)
	}
	if got := problem.KindForStatus(502); got != problem.Unavailable {
		t.Errorf("an unknown 5xx reads as %v, want unavailable", got)
	}
}
