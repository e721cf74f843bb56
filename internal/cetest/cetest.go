// Package cetest holds our events to the CloudEvents Go SDK
// (github.com/cloudevents/sdk-go/v2): a bus's tests publish an event of every
// type, read the bytes off the wire, and have the SDK — a reader that is not ours —
// decode and validate each. Only tests import this package, so the SDK never
// reaches a binary.
package cetest

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"path"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchyard/switchyard/event"
)

// Examples returns one valid event of every type the registry knows, drawn from
// its schema with a fixed seed.
func Examples(t testing.TB, reg *event.Registry) []event.Event {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	var out []event.Event
	for _, typ := range reg.Types() {
		data, err := reg.Example(typ, rnd)
		if err != nil {
			t.Fatal(err)
		}
		e, err := event.New(t.Context(), "/switchyard/cetest", typ, "subject-"+typ, data)
		if err != nil {
			t.Fatal(err)
		}
		e.CorrelationID, e.IdempotencyKey = "correlation-1", "key-1"
		out = append(out, e)
	}
	return out
}

// Check decodes raw, an event as it travelled, with the SDK and fails t unless the
// SDK finds it a valid CloudEvent that says what sent did: its attributes, its
// extensions, and a dataschema naming the file in schemas (by its $id) that its
// data follows.
func Check(t testing.TB, raw []byte, sent *event.Event, schemas fs.FS) {
	t.Helper()
	ce := cloudevents.New()
	if err := json.Unmarshal(raw, &ce); err != nil {
		t.Errorf("%s: the SDK cannot read it: %v\n%s", sent.Type, err, raw)
		return
	}
	if err := ce.Validate(); err != nil {
		t.Errorf("%s: the SDK finds it invalid: %v", sent.Type, err)
	}
	for _, c := range []struct{ attr, got, want string }{
		{"specversion", ce.SpecVersion(), "1.0"},
		{"id", ce.ID(), sent.ID},
		{"type", ce.Type(), sent.Type},
		{"source", ce.Source(), sent.Source},
		{"subject", ce.Subject(), sent.Subject},
		{"datacontenttype", ce.DataContentType(), "application/json"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s is %q to the SDK, want %q", sent.Type, c.attr, c.got, c.want)
		}
	}
	if !ce.Time().Equal(sent.Time) {
		t.Errorf("%s: time is %v to the SDK, want %v", sent.Type, ce.Time(), sent.Time)
	}
	ext := ce.Extensions()
	for name, want := range map[string]string{"traceparent": sent.TraceParent, "correlationid": sent.CorrelationID, "idempotencykey": sent.IdempotencyKey} {
		if want == "" {
			continue
		}
		if got, _ := ext[name].(string); got != want {
			t.Errorf("%s: extension %s is %v to the SDK, want %q", sent.Type, name, ext[name], want)
		}
	}

	// dataschema names the type's schema file, and the data follows it.
	file := sent.Type + ".json"
	doc, err := fs.ReadFile(schemas, file)
	if err != nil {
		t.Errorf("%s: no schema file: %v", sent.Type, err)
		return
	}
	var head struct {
		ID string `json:"$id"`
	}
	_ = json.Unmarshal(doc, &head)
	if ce.DataSchema() == "" || ce.DataSchema() != head.ID || path.Base(ce.DataSchema()) != file {
		t.Errorf("%s: dataschema %q, want the $id %q of %s", sent.Type, ce.DataSchema(), head.ID, file)
	}
	schemaDoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(head.ID, schemaDoc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(head.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := jsonschema.UnmarshalJSON(bytes.NewReader(ce.Data()))
	if err != nil {
		t.Errorf("%s: the SDK's data is not JSON: %v", sent.Type, err)
		return
	}
	if err := sch.Validate(data); err != nil {
		t.Errorf("%s: the data the SDK read breaks %s: %v", sent.Type, file, err)
	}
}
