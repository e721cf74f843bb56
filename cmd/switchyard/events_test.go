package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// publishPoison puts an inventory event that breaks its schema (stock below zero)
// straight on the stack's broker, bypassing every producer's validation: catalog
// dead-letters it at once.
func (s *stack) publishPoison(id string) {
	s.t.Helper()
	s.publishRaw(`{"specversion":"1.0","id":"` + id + `","type":"inventory.stock.changed.v1",` +
		`"source":"/intruder","subject":"prod-kbd-001","time":"2026-11-22T00:00:00Z","datacontenttype":"application/json",` +
		`"data":{"product_id":"prod-kbd-001","available":-5,"reserved":0,"sold":0,"reason":"stolen"}}`)
}

// publishRaw puts bytes on the stack's broker as an inventory event.
func (s *stack) publishRaw(event string) {
	s.t.Helper()
	nc, err := nats.Connect(s.read().Broker.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("events.inventory.stock.changed", []byte(event)); err != nil {
		s.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		s.t.Fatal(err)
	}
}

// A malformed event on the broker goes to the dead letters at once (no retries),
// where the operator commands find, show and purge it.
func TestOperatorsSeeAndPurgeDeadLetters(t *testing.T) {
	s := startUp(t, fullPlatform)
	s.publishPoison("01a20000-0000-7000-8000-000000000001")
	// A field twice: valid by the schema whichever copy a consumer reads, which is
	// the trouble — two consumers could act on two different stock levels.
	s.publishRaw(`{"specversion":"1.0","id":"01a20000-0000-7000-8000-000000000002","type":"inventory.stock.changed.v1",` +
		`"source":"/intruder","subject":"prod-kbd-001","time":"2026-11-22T00:00:00Z","datacontenttype":"application/json",` +
		`"data":{"product_id":"prod-kbd-001","available":5,"available":500,"reserved":0,"sold":0,"reason":"restock"}}`)
	var list string
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(list, "01a20000-0000-7000-8000-000000000001") || !strings.Contains(list, "01a20000-0000-7000-8000-000000000002") {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter after 15s:\n%s", list)
		}
		time.Sleep(200 * time.Millisecond)
		out, _ := execIn(s.dir, "events", "dlq", "list", "--group", "catalog").CombinedOutput()
		list = string(out)
	}
	if !strings.Contains(list, "catalog") || !strings.Contains(list, "schema violation") {
		t.Errorf("list:\n%s", list)
	}
	var id, twice string
	for _, line := range strings.Split(list, "\n") {
		switch {
		case strings.Contains(line, "01a20000-0000-7000-8000-000000000001"):
			id = strings.Fields(line)[0]
		case strings.Contains(line, "01a20000-0000-7000-8000-000000000002"):
			twice = strings.Fields(line)[0]
		}
	}
	if out, err := execIn(s.dir, "events", "dlq", "show", twice).CombinedOutput(); err != nil || !strings.Contains(string(out), `duplicate key \"available\"`) {
		t.Errorf("show the event with a field twice: %v\n%s", err, out)
	}
	out, err := execIn(s.dir, "events", "dlq", "show", id).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"attempts": 1`) || !strings.Contains(string(out), `"group": "catalog"`) {
		t.Errorf("show: %v\n%s", err, out)
	}
	// A replay would publish an event that breaks its schema: refused, saying why.
	if out, err := execIn(s.dir, "events", "dlq", "replay", id).CombinedOutput(); err == nil || !strings.Contains(string(out), "at '/available': minimum: got -5, want 0") {
		t.Errorf("replay of a broken event: %v\n%s", err, out)
	}
	out, err = execIn(s.dir, "events", "dlq", "purge", "--all", "--group", "catalog").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "purged 2 dead letters") {
		t.Errorf("purge: %v\n%s", err, out)
	}
	out, _ = execIn(s.dir, "events", "dlq", "list").CombinedOutput()
	if !strings.Contains(string(out), "no dead letters") {
		t.Errorf("after purge:\n%s", out)
	}
	for _, bad := range [][]string{{"events"}, {"events", "dlq"}, {"events", "dlq", "show"}, {"events", "tail"}, {"events", "tail", "*.x"}} {
		cmd := execIn(s.dir, bad...)
		cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 {
			t.Errorf("%v: exit %d, want 2", bad, cmd.ProcessState.ExitCode())
		}
	}
}
