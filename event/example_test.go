package event_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/event"
)

// Every example is checked through the path a published event takes: New, then
// the registry's Validate.
func validExample(t *testing.T, reg *event.Registry, typ string, seed uint64) any {
	t.Helper()
	data, err := reg.Example(typ, rand.New(rand.NewPCG(seed, 1)))
	if err != nil {
		t.Fatalf("%s, seed %d: %v", typ, seed, err)
	}
	e, err := event.New(context.Background(), "/test", typ, "s", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Validate(&e); err != nil {
		t.Fatalf("%s, seed %d: the example %s breaks its schema: %v", typ, seed, e.Data, err)
	}
	return data
}

func TestExamplesOfEveryShopEventAreValid(t *testing.T) {
	t.Parallel()
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range reg.Types() {
		for seed := range uint64(100) {
			validExample(t, reg, typ, seed)
		}
	}
}

const intricate = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["id", "code", "at", "kind", "score", "ratio", "tags", "where", "choice", "fixed"],
  "$defs": {"point": {"type": "object", "required": ["lat", "lon"], "additionalProperties": false,
    "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90}, "lon": {"type": "number", "exclusiveMinimum": -180, "exclusiveMaximum": 180}}}},
  "properties": {
    "id": {"type": "string", "format": "uuid"},
    "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3,5}(x|y)?$"},
    "at": {"type": "string", "format": "date-time"},
    "email": {"type": "string", "format": "email"},
    "kind": {"enum": ["ride", "delivery"]},
    "score": {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 5},
    "ratio": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "tags": {"type": "array", "minItems": 2, "maxItems": 4, "uniqueItems": true, "items": {"type": "string", "minLength": 3, "maxLength": 3}},
    "where": {"$ref": "#/$defs/point"},
    "choice": {"oneOf": [{"type": "integer", "minimum": 100}, {"type": "string", "maxLength": 2}]},
    "fixed": {"const": "v1"},
    "maybe": {"type": ["string", "null"]}
  }
}`

func TestExamplesFollowTheirSchemaDownToItsDetails(t *testing.T) {
	t.Parallel()
	reg, err := event.NewRegistry(fstest.MapFS{"rides.ride.requested.v1.json": {Data: []byte(intricate)}})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[any]bool{}
	for seed := range uint64(300) {
		data := validExample(t, reg, "rides.ride.requested.v1", seed).(map[string]any)
		kinds[data["kind"]] = true
		if code := data["code"].(string); !strings.Contains(code, "-") {
			t.Fatalf("code %q does not follow its pattern", code)
		}
	}
	if !kinds["ride"] || !kinds["delivery"] {
		t.Errorf("an enum's values are all drawn: %v", kinds)
	}
	a, _ := reg.Example("rides.ride.requested.v1", rand.New(rand.NewPCG(42, 1)))
	b, _ := reg.Example("rides.ride.requested.v1", rand.New(rand.NewPCG(42, 1)))
	delete(a.(map[string]any), "at")
	delete(b.(map[string]any), "at")
	if !reflect.DeepEqual(a, b) {
		t.Errorf("one seed, two examples:\n%v\n%v", a, b)
	}
	if _, err := reg.Example("rides.ride.cancelled.v1", rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Error("an example of a type with no schema")
	}
}

func TestASchemaNoDrawSatisfiesIsAnError(t *testing.T) {
	t.Parallel()
	impossible := `{"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}}`
	reg, err := event.NewRegistry(fstest.MapFS{"rides.ride.requested.v1.json": {Data: []byte(impossible)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Example("rides.ride.requested.v1", rand.New(rand.NewPCG(1, 1))); err == nil || !strings.Contains(err.Error(), "no draw satisfied") {
		t.Errorf("got %v", err)
	}
}
