package event

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchyard/switchyard/internal/strictjson"
)

// ErrNoSchema is returned for an event type without a schema.
var ErrNoSchema = errors.New("no schema for event type")

// Registry holds a JSON Schema per event type and validates events' data against it.
// A Registry is safe for concurrent use.
type Registry struct {
	schemas map[string]*jsonschema.Schema
	ids     map[string]string // type → the schema's $id, when it has one
}

// NewRegistry compiles every <type>.json schema at the root of fsys (for example
// orders.order.placed.v1.json). A file whose name is not an event type is an error.
func NewRegistry(fsys fs.FS) (*Registry, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("event schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	r := &Registry{schemas: map[string]*jsonschema.Schema{}, ids: map[string]string{}}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".json" {
			continue
		}
		typ := strings.TrimSuffix(name, ".json")
		if _, err := ParseType(typ); err != nil {
			return nil, fmt.Errorf("event schema %s: %w", name, err)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("event schema %s: %w", name, err)
		}
		url := "urn:switchyard:event:" + typ
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("event schema %s: %w", name, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("event schema %s: %w", name, err)
		}
		r.schemas[typ] = sch
		if obj, ok := doc.(map[string]any); ok {
			if id, ok := obj["$id"].(string); ok && id != "" {
				r.ids[typ] = id
			}
		}
	}
	return r, nil
}

// SchemaURI is the $id of typ's schema ("" when it has none): the dataschema of
// the type's events.
func (r *Registry) SchemaURI(typ string) string { return r.ids[typ] }

// Prepare readies e for publishing: it names the schema its data follows
// (dataschema, from the schema's $id) and validates it as Validate does.
func (r *Registry) Prepare(e *Event) error {
	if e.DataSchema == "" {
		e.DataSchema = r.ids[e.Type]
	}
	return r.Validate(e)
}

// Types lists the event types the registry knows, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.schemas))
	for t := range r.schemas {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Validate checks e's envelope and its data against the schema of its type (parsing
// the data once).
func (r *Registry) Validate(e *Event) error {
	if err := e.validateEnvelope(); err != nil {
		return err
	}
	sch, ok := r.schemas[e.Type]
	if !ok {
		return fmt.Errorf("%w %s", ErrNoSchema, e.Type)
	}
	if e.DataSchema != "" && r.ids[e.Type] != "" && e.DataSchema != r.ids[e.Type] {
		return fmt.Errorf("event %s %s: dataschema %q is not the schema of its type (%s)", e.Type, e.ID, e.DataSchema, r.ids[e.Type])
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Data))
	if err != nil {
		return fmt.Errorf("event %s %s: data is not JSON: %w", e.Type, e.ID, err)
	}
	if err := strictjson.Check(e.Data); err != nil {
		return fmt.Errorf("event %s %s: data: %w", e.Type, e.ID, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("schema violation (%s): %s", e.Type, schemaDetail(err))
	}
	return nil
}

// schemaDetail condenses a validation error to its findings: "at '/available':
// minimum: got -5, want 0; at '/reason': ...".
func schemaDetail(err error) string {
	var parts []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
		if strings.HasPrefix(line, "at '") {
			parts = append(parts, line)
		}
	}
	if len(parts) == 0 {
		return err.Error()
	}
	return strings.Join(parts, "; ")
}
