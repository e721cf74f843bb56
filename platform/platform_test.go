package platform_test

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/platform/platformtest"
	"github.com/switchyard/switchyard/problem"
)

// A two-service system, declared: front calls back (REST, under a policy) and
// publishes an event back consumes.
const system = `version: 1
services:
  front:
    listen: 127.0.0.1:0
    dependencies:
      back:
        protocol: rest
        policy: {timeout: 2s, try_timeout: 500ms, retry: {max_attempts: 2}}
    publishes: [demo.thing.happened.v1]
  back:
    listen: 127.0.0.1:0
    subscriptions: [demo.thing.happened.v1]
`

var schemas = fstest.MapFS{"demo.thing.happened.v1.json": {Data: []byte(`{"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}`)}}

// what the builders saw and did, for the test to read.
type world struct {
	consumed     atomic.Int64
	undeclared   error // front's client of a service it does not declare
	unpublished  error // front's outbox adding a type it does not declare
	unsubscribed int   // back's consumers of a type it does not subscribe
}

func services(w *world) []platform.Service {
	front := platform.Service{Name: "front", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		db, err := p.Database(ctx, nil)
		if err != nil {
			return nil, err
		}
		ob, err := p.Outbox(ctx, db)
		if err != nil {
			return nil, err
		}
		back, err := p.Client(ctx, "back")
		if err != nil {
			return nil, err
		}
		_, w.undeclared = p.Client(ctx, "elsewhere")
		odd, _ := event.New(ctx, "/front", "demo.other.happened.v1", "x", map[string]int{"n": 1})
		w.unpublished = db.InTx(ctx, func(tx *sql.Tx) error { return ob.Add(ctx, tx, odd) })
		mux := http.NewServeMux()
		mux.HandleFunc("POST /hit", func(rw http.ResponseWriter, r *http.Request) {
			resp, err := back.HTTPClient().Get(back.BaseURL() + "/ping")
			if err != nil {
				problem.Writer{}.Write(rw, r, err)
				return
			}
			defer resp.Body.Close()
			e, _ := event.New(r.Context(), "/front", "demo.thing.happened.v1", "hit", map[string]int{"n": 1})
			if err := db.InTx(r.Context(), func(tx *sql.Tx) error { return ob.Add(r.Context(), tx, e) }); err != nil {
				problem.Writer{}.Write(rw, r, err)
				return
			}
			rw.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(rw, resp.Body)
		})
		return &platform.Component{Handler: mux}, nil
	}}
	back := platform.Service{Name: "back", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		callers, err := p.Callers()
		if err != nil {
			return nil, err
		}
		count := func(context.Context, *bus.Message) error { w.consumed.Add(1); return nil }
		if err := p.Consume(bus.Subscription{Types: []string{"demo.thing.happened.v1"}}, count); err != nil {
			return nil, err
		}
		if err := p.Consume(bus.Subscription{Types: []string{"demo.other.happened.v1"}}, func(context.Context, *bus.Message) error {
			w.unsubscribed++
			return nil
		}); err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /ping", callers.RequireService(problem.Writer{}.Write, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(rw, "pong")
		})))
		return &platform.Component{Handler: mux}, nil
	}}
	return []platform.Service{front, back}
}

// What a declaration implies, the platform builds: front's call reaches back
// through discovery with front's service token, back admits it (and refuses a
// call without one), front's event reaches back's consumer; and what it does not
// declare, a service cannot do — call another service, publish another type,
// consume another type.
func TestADeclarationIsWhatAServiceGets(t *testing.T) {
	t.Parallel()
	w := &world{}
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas, Services: services(w)})

	resp, err := http.Post(sys.URL("front")+"/hit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "pong" {
		t.Fatalf("front's call to back: %d %s", resp.StatusCode, body)
	}
	direct, err := http.Get(sys.URL("back") + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	direct.Body.Close()
	if direct.StatusCode != http.StatusUnauthorized {
		t.Errorf("back answered a call without a service token with %d, want 401", direct.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.consumed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if w.consumed.Load() != 1 {
		t.Errorf("back consumed %d events, want front's one", w.consumed.Load())
	}
	if w.undeclared == nil || !strings.Contains(w.undeclared.Error(), "does not declare") {
		t.Errorf("a client of an undeclared service: %v, want refused", w.undeclared)
	}
	if w.unpublished == nil || !strings.Contains(w.unpublished.Error(), "does not declare that it publishes demo.other.happened.v1") {
		t.Errorf("front's outbox and an event type front does not declare: %v, want refused", w.unpublished)
	}
	if w.unsubscribed != 0 {
		t.Error("back consumed a type it does not subscribe")
	}
}

// A builder that fails stops the start with the service's name and the reason;
// asking for a service the declaration does not hold names what it does.
func TestStartRefusesWhatCannotRun(t *testing.T) {
	t.Parallel()
	cfgs := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas}).Config // no services run
	broken := platform.Service{Name: "front", Build: func(context.Context, *platform.Process) (*platform.Component, error) {
		return nil, io.ErrUnexpectedEOF
	}}
	_, err := platform.Start(context.Background(), broken, platform.Options{Config: cfgs, Events: schemas})
	if err == nil || !strings.Contains(err.Error(), "start front") {
		t.Errorf("a failing builder: %v", err)
	}
	_, err = platform.Start(context.Background(), platform.Service{Name: "nowhere", Build: broken.Build}, platform.Options{Config: cfgs})
	if err == nil || !strings.Contains(err.Error(), `no service "nowhere"`) || !strings.Contains(err.Error(), "front") {
		t.Errorf("an undeclared service: %v", err)
	}
}
