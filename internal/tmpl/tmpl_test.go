package tmpl_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/tmpl"
)

func TestReferencesAreFilledWithTheirTypes(t *testing.T) {
	v := &tmpl.Vars{ID: "x1", Path: map[string]string{"zone": "north"},
		Request: map[string]any{"seats": 2.0, "rider": map[string]any{"name": "ann"}, "stops": []any{"a", "b"}}}
	got := tmpl.Render(map[string]any{
		"id": "{{id}}", "seats": "{{ request.seats }}", "who": "rider {{request.rider.name}} in {{path.zone}}",
		"second": "{{request.stops.1}}", "missing": "{{request.nothing}}", "list": []any{"{{path.zone}}", 3},
	}, v).(map[string]any)
	want := map[string]any{"id": "x1", "seats": 2.0, "who": "rider ann in north", "second": "b", "missing": nil, "list": []any{"north", 3}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if a, b := tmpl.RenderString("{{uuid}}", v), tmpl.RenderString("{{uuid}}", v); a == b || len(a) != 36 {
		t.Errorf("uuid is new each time: %q %q", a, b)
	}
	if got := tmpl.FillPath("/v1/zones/{zone}/rides/{id}", v); !strings.HasPrefix(got, "/v1/zones/north/rides/") || len(got) != len("/v1/zones/north/rides/")+36 {
		t.Errorf("FillPath: %q", got)
	}
	merged := tmpl.Merge(map[string]any{"a": 1, "b": map[string]any{"c": 2, "d": 3}}, map[string]any{"b": map[string]any{"c": 9}})
	if !reflect.DeepEqual(merged, map[string]any{"a": 1, "b": map[string]any{"c": 9, "d": 3}}) {
		t.Errorf("Merge: %v", merged)
	}
}

func TestAReferenceOutOfScopeIsRefused(t *testing.T) {
	for _, c := range []struct {
		t    any
		sc   tmpl.Scope
		want string
	}{
		{"{{request.x}}", tmpl.Scope{Event: true}, "{{request.x}} is not something this template can read: {{id}}, {{uuid}}, {{now}}, {{event.<field>}}"},
		{map[string]any{"k": "{{path.zone}}"}, tmpl.Scope{Request: true, Path: []string{"id"}}, "the endpoint's path has no {zone}"},
		{[]any{"{{idd}}"}, tmpl.Scope{}, "{{idd}} is not something"},
	} {
		if err := tmpl.Check(c.t, c.sc); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.t, err, c.want)
		}
	}
	if err := tmpl.Check(map[string]any{"a": "{{id}} {{now}}", "b": "{{event.ride.id}}"}, tmpl.Scope{Event: true}); err != nil {
		t.Errorf("a template within scope: %v", err)
	}
}

// A compiled template writes, byte for byte, what encoding/json writes of the
// rendered value: keys sorted, HTML escaped, references typed, the trailing newline.
func TestACompiledTemplateWritesWhatTheEncoderWould(t *testing.T) {
	v := &tmpl.Vars{ID: "x1", Path: map[string]string{"zone": "<north>"},
		Request: map[string]any{"seats": 2.0, "rider": map[string]any{"name": "ann & bo"}, "stops": []any{"a", "b"}}}
	for _, tpl := range []any{
		map[string]any{
			"id": "{{id}}", "seats": "{{ request.seats }}", "who": "rider {{request.rider.name}} in {{path.zone}}",
			"rider": "{{request.rider}}", "missing": "{{request.nothing}}", "list": []any{"{{path.zone}}", 3, uint64(7), true, nil},
			"z": map[string]any{"b": 1.5, "a": "plain \"quoted\" <b>"}, "": "empty key",
		},
		"{{request.stops}}",
		"just text",
		[]any{},
		map[string]any{},
		nil,
	} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(tmpl.Render(tpl, v)); err != nil {
			t.Fatal(err)
		}
		c, err := tmpl.CompileJSON(tpl)
		if err != nil {
			t.Fatalf("compile %v: %v", tpl, err)
		}
		if got := c.Append(nil, v); string(got) != want.String() {
			t.Errorf("%v:\n got %s\nwant %s", tpl, got, want.String())
		}
	}
	if _, err := tmpl.CompileJSON(map[string]any{"f": func() {}}); err == nil {
		t.Error("a value JSON cannot hold compiled")
	}
}
