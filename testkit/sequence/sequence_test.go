package sequence_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform/platformtest"
	"github.com/switchyard/switchyard/testkit/sequence"
)

// A quote: rides answers after asking pricing twice at once and drivers once.
const system = `version: 1
services:
  pricing:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - {endpoint: "GET /v1/prices/{zone}", latency: 2ms}
  drivers:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - {endpoint: drivers.v1.DriverService/Nearby, latency: 1ms}
  rides:
    listen: 127.0.0.1:0
    dependencies:
      pricing: {protocol: rest}
      drivers: {protocol: grpc}
    simulate:
      endpoints:
        - endpoint: POST /v1/quotes
          calls:
            - {to: pricing, endpoint: "GET /v1/prices/{zone}", count: 2, parallel: true}
CALLS
`

// quote runs the system, asks rides for a quote, and returns its trace.
func quote(t *testing.T, calls string) func() observe.Trace {
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(strings.Replace(system, "CALLS", calls, 1)), Events: fstest.MapFS{}})
	id, h := platformtest.Traced()
	req, _ := http.NewRequest("POST", sys.URL("rides")+"/v1/quotes", strings.NewReader(`{}`))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("quote: %d", resp.StatusCode)
	}
	return func() observe.Trace { return sys.Trace(id) }
}

const golden = `sequenceDiagram
  actor n_client as client
  participant n_rides as rides
  participant n_pricing as pricing
  n_client->>n_rides: POST /v1/quotes
  n_rides->>n_pricing: GET /v1/prices/{zone}
  n_pricing-->>n_rides: 200
  n_rides->>n_pricing: GET /v1/prices/{zone}
  n_pricing-->>n_rides: 200
  n_rides-->>n_client: 200
`

func TestAFlowDrawsItsGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quote.mmd")
	if err := os.WriteFile(path, []byte(golden), 0o600); err != nil {
		t.Fatal(err)
	}
	sequence.Golden(t, path, quote(t, ""))
}

// recorder stands in for a test, to see Golden fail.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }
func (r *recorder) Helper()                           {}

func TestAnAddedCallFailsTheGoldenAndShowsWhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quote.mmd")
	if err := os.WriteFile(path, []byte(golden), 0o600); err != nil {
		t.Fatal(err)
	}
	trace := quote(t, `            - {to: drivers, endpoint: drivers.v1.DriverService/Nearby}`)
	rec := &recorder{TB: t}
	sequence.Golden(rec, path, trace, sequence.Options{Within: 3e9})
	if len(rec.failures) != 1 {
		t.Fatalf("an added call passed the golden: %v", rec.failures)
	}
	msg := rec.failures[0]
	for _, want := range []string{
		"the flow's sequence differs from " + path,
		"+   participant n_drivers as drivers",
		"+   n_rides->>n_drivers: drivers.v1.DriverService/Nearby",
		"+   n_drivers-->>n_rides: OK",
		"    n_rides-->>n_client: 200",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message lacks %q:\n%s", want, msg)
		}
	}
	t.Logf("Golden said:\n%s", msg)
}

func TestDiffShowsChangesInContext(t *testing.T) {
	a := "one\ntwo\nthree\nfour\nfive\nsix\nseven\n"
	b := "one\ntwo\nthree\nfour\nFIVE\nsix\nseven\neight\n"
	got := sequence.Diff(a, b)
	want := "  three\n  four\n- five\n+ FIVE\n  six\n  seven\n+ eight\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
