package problem_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/switchyard/switchyard/problem"
)

// An error becomes an RFC 9457 problem document at the HTTP edge: the status its
// kind says, a safe detail, the field at fault, and Retry-After when it has one.
func ExampleWriter() {
	pw := problem.Writer{}
	for _, err := range []error{
		problem.InvalidField("seats", "want 1 to 10, got %d", 40),
		&problem.Error{Kind: problem.Unavailable, Detail: "seats is unavailable (circuit open)", RetryAfter: 1500 * time.Millisecond},
	} {
		rec := httptest.NewRecorder()
		pw.Write(rec, httptest.NewRequest("POST", "/v1/bookings", nil), err)
		fmt.Printf("%d %s, Retry-After: %q\n", rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Retry-After"))
		fmt.Print(rec.Body.String())
	}
	// Output:
	// 400 application/problem+json, Retry-After: ""
	// {"type":"urn:switchyard:problem:invalid-request","title":"Invalid request","status":400,"detail":"seats: want 1 to 10, got 40","instance":"/v1/bookings","errors":[{"name":"seats","detail":"want 1 to 10, got 40"}]}
	// 503 application/problem+json, Retry-After: "2"
	// {"type":"urn:switchyard:problem:unavailable","title":"Service unavailable","status":503,"detail":"seats is unavailable (circuit open)","instance":"/v1/bookings"}
}
