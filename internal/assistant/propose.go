package assistant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/goccy/go-yaml"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pmezard/go-difflib/difflib"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/yamledit"
)

type proposeIn struct {
	Change      string `json:"change" jsonschema:"what to change: add_service, add_dependency, publish_event or set"`
	Service     string `json:"service,omitempty" jsonschema:"the service changed; for add_service the new one (lower-case letters, digits, dashes)"`
	To          string `json:"to,omitempty" jsonschema:"add_dependency: the service called"`
	Protocol    string `json:"protocol,omitempty" jsonschema:"add_dependency: rest (the default) or grpc"`
	Event       string `json:"event,omitempty" jsonschema:"publish_event: the event type, <domain>.<entity>.<past-tense verb>.v<N>; its schema must exist"`
	Owner       string `json:"owner,omitempty" jsonschema:"add_service: the team accountable"`
	Description string `json:"description,omitempty" jsonschema:"add_service: what the service is for, in a sentence"`
	Key         string `json:"key,omitempty" jsonschema:"set: the dotted key, e.g. gateway.routes.0.timeout"`
	Value       string `json:"value,omitempty" jsonschema:"set: the value, YAML scalar or flow text"`
	Write       bool   `json:"write,omitempty" jsonschema:"write the patched switchyard.yaml when it is valid (default false: only propose)"`
}

type proposal struct {
	// Patch is the change as a unified diff of switchyard.yaml.
	Patch  string        `json:"patch"`
	Valid  bool          `json:"valid"`
	Errors []configError `json:"errors"`
	// Analysis is what the change does to the policy analysis.
	Analysis *analysis.Changes `json:"analysis,omitempty"`
	// EdgesAdded and EdgesRemoved are the declared diagram's difference, Mermaid
	// the diagram after the change.
	EdgesAdded   []diagram.Edge `json:"edges_added"`
	EdgesRemoved []diagram.Edge `json:"edges_removed"`
	Mermaid      string         `json:"mermaid,omitempty"`
	Written      bool           `json:"written"`
}

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// edit applies in to raw.
func edit(cfg *config.Config, raw []byte, in proposeIn) ([]byte, error) {
	known := func(field, name string) error {
		if name == "" {
			return fieldError(field, "required for %s", in.Change)
		}
		if cfg.Service(name) == nil {
			return fieldError(field, "no service %q is declared", name)
		}
		return nil
	}
	switch in.Change {
	case "add_service":
		if !serviceName.MatchString(in.Service) {
			return nil, fieldError("service", "want a name of lower-case letters, digits and dashes, got %q", in.Service)
		}
		if cfg.Process(in.Service) != nil {
			return nil, fieldError("service", "%s is already declared", in.Service)
		}
		svc := yaml.MapSlice{}
		if in.Owner != "" {
			svc = append(svc, yaml.MapItem{Key: "owner", Value: in.Owner})
		}
		if in.Description != "" {
			svc = append(svc, yaml.MapItem{Key: "description", Value: in.Description})
		}
		// Until its code exists the service runs as a simulation of one endpoint.
		svc = append(svc, yaml.MapItem{Key: "listen", Value: "127.0.0.1:0"},
			yaml.MapItem{Key: "simulate", Value: yaml.MapSlice{{Key: "endpoints", Value: []any{
				yaml.MapSlice{{Key: "endpoint", Value: "GET /v1/" + in.Service + "/{id}"}, {Key: "latency", Value: "5ms"}}}}}})
		return yamledit.Insert(raw, "services", in.Service, svc)
	case "add_dependency":
		if err := known("service", in.Service); err != nil {
			return nil, err
		}
		if err := known("to", in.To); err != nil {
			return nil, err
		}
		if _, ok := cfg.Service(in.Service).Dependencies[in.To]; ok {
			return nil, fieldError("to", "%s already depends on %s", in.Service, in.To)
		}
		protocol := in.Protocol
		switch protocol {
		case "":
			protocol = "rest"
		case "rest", "grpc":
		default:
			return nil, fieldError("protocol", "want rest or grpc, got %q", in.Protocol)
		}
		return yamledit.Set(raw, "services."+in.Service+".dependencies."+in.To+".protocol", protocol)
	case "publish_event":
		if err := known("service", in.Service); err != nil {
			return nil, err
		}
		if !config.EventType.MatchString(in.Event) {
			return nil, fieldError("event", "%q is not an event type <domain>.<entity>.<past-tense verb>.v<N>", in.Event)
		}
		if slices.Contains(cfg.Service(in.Service).Publishes, in.Event) {
			return nil, fieldError("event", "%s already publishes %s", in.Service, in.Event)
		}
		return yamledit.Append(raw, "services."+in.Service+".publishes", in.Event)
	case "set":
		if in.Key == "" {
			return nil, fieldError("key", "required for set")
		}
		out, err := yamledit.Set(raw, in.Key, in.Value)
		if err != nil {
			return nil, fieldError("key", "%v", err)
		}
		return out, nil
	case "":
		return nil, fieldError("change", "required: add_service, add_dependency, publish_event or set")
	}
	return nil, fieldError("change", "want add_service, add_dependency, publish_event or set, got %q", in.Change)
}

func (s *server) propose(_ context.Context, _ *mcp.CallToolRequest, in proposeIn) (*mcp.CallToolResult, any, error) {
	cfg, raw, err := s.current()
	if err != nil {
		return nil, nil, err
	}
	changed, err := edit(cfg, raw, in)
	if err != nil {
		return nil, nil, err
	}
	patch, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(raw)), B: difflib.SplitLines(string(changed)),
		FromFile: "a/" + s.Source, ToFile: "b/" + s.Source, Context: 3})
	if err != nil {
		return nil, nil, err
	}
	out := proposal{Patch: patch, EdgesAdded: []diagram.Edge{}, EdgesRemoved: []diagram.Edge{}}
	after, errs := s.check(changed)
	out.Valid, out.Errors = len(errs) == 0, nonNilErrors(errs)
	if after != nil {
		before, err := s.Analyse(cfg, 0)
		if err != nil {
			return nil, nil, err
		}
		report, err := s.Analyse(after, 0)
		if err != nil {
			return nil, nil, err
		}
		diff := analysis.Diff(before, report)
		out.Analysis = &diff
		out.EdgesAdded, out.EdgesRemoved = diagram.Drift(diagram.Declared(after), diagram.Declared(cfg))
		var b bytes.Buffer
		if err := (diagram.Graph{Edges: diagram.Declared(after)}).Mermaid(&b); err != nil {
			return nil, nil, err
		}
		out.Mermaid = b.String()
	}
	if in.Write {
		switch {
		case !out.Valid:
			return nil, nil, fieldError("write", "the changed configuration is not valid; nothing was written: %s", out.Errors[0].Message)
		case s.Write == nil:
			return nil, nil, errors.New("write: the configuration is the binary's built-in one; run the server with --config <file> to change a file")
		}
		if err := s.Write(changed); err != nil {
			return nil, nil, err
		}
		out.Written = true
	}
	summary := fmt.Sprintf("%s (valid: %v, written: %v)\n%s", in.Change, out.Valid, out.Written, out.Patch)
	return text(summary), out, nil
}
