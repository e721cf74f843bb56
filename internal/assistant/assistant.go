// Package assistant is the Model Context Protocol server through which an
// assistant works on a Switchyard system, on the official Go SDK. It reads the
// system as declared (switchyard.yaml) and as it runs (the trace hub, the dead
// letters), reasons about it with the policy analysis, proposes changes as
// validated patches, and operates it only where an administrator's token allows:
//
//	describe            services, owners, edges with their policies, events, routes
//	analyze             the policy analysis (switchyard lint), optionally of a changed design
//	diagram             the declared or the observed interaction diagram
//	trace               one trace's sequence diagram
//	dead_letters        the events consumers gave up on
//	explain_order       one order's case file: saga timeline, failed step and why, policy decisions, events, dead letters, edges
//	validate_config     a proposed switchyard.yaml, its errors with lines
//	propose_change      add a service, a dependency, a publication — or set a key — as a patch with its design and diagram difference
//	replay_dead_letter  publish a dead letter's event again (administrators only)
//
// and the design document as the resource switchyard://design. Tool input is
// validated against each tool's schema by the SDK; what the schema cannot say
// (an unknown service, an oversize file) the handlers refuse with an error naming
// the field.
package assistant

import (
	"context"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/saga"
)

// MaxConfigBytes bounds a switchyard.yaml handed to validate_config.
const MaxConfigBytes = 256 << 10

// Options are what the server works with. Raw, Load and Analyse are required.
type Options struct {
	// Version is reported to clients.
	Version string
	// Source names the configuration ("switchyard.yaml").
	Source string
	// Raw returns the configuration's text as it is now.
	Raw func() ([]byte, error)
	// Load loads a configuration text as switchyard does: strictly, event schemas
	// checked.
	Load func(raw []byte) (*config.Config, error)
	// Write replaces the configuration file; nil when it cannot be written (the
	// binary's built-in one).
	Write func(raw []byte) error
	// Analyse is the policy analysis of a configuration with retry budgets at rate
	// requests per second (0: the default); Sagas describes the sagas its
	// services' code defines.
	Analyse func(cfg *config.Config, rate float64) (analysis.Report, error)
	Sagas   func(*config.Config) ([]analysis.Saga, error)
	// Design renders the design document of a configuration.
	Design func(*config.Config) ([]byte, error)
	// Stack returns the running system's trace hub and gateway URLs ("" when
	// none runs).
	Stack func() (hub, gateway string, err error)
	// DeadLetters opens the broker's dead letters; nil when there is no broker.
	DeadLetters func(ctx context.Context, cfg *config.Config) (bus.DeadLetters, func(), error)
	// AdminToken is an administrator's bearer token, presented to the gateway to
	// replay a dead letter; empty refuses every operation.
	AdminToken string
	// Client calls the hub and the gateway [a client with a 30s timeout].
	Client *http.Client
}

// server is the state behind the tools.
type server struct {
	Options
}

// New returns the MCP server of a system.
func New(o Options) *mcp.Server {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second}
	}
	s := &server{Options: o}
	srv := mcp.NewServer(&mcp.Implementation{Name: "switchyard", Title: "Switchyard", Version: o.Version}, &mcp.ServerOptions{
		Instructions: "Switchyard runs a microservice system declared in switchyard.yaml. Start with describe; analyze finds policy flaws; " +
			"explain_order tells one order's story from its traces; propose_change returns a validated patch and writes it only with write: true.",
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "describe", Title: "Describe the system",
		Description: "The declared system: services with owners and descriptions, synchronous edges with their effective policies, events with publishers and consumers, gateway routes.",
		Annotations: readOnly()}, s.describe)
	mcp.AddTool(srv, &mcp.Tool{Name: "analyze", Title: "Analyse the policies",
		Description: "The policy analysis (switchyard lint): timeout inversions, retry amplification with budgets, deadline budgets per route hop, structural smells; with set, the analysis of the changed design and the difference.",
		Annotations: readOnly()}, s.analyze)
	mcp.AddTool(srv, &mcp.Tool{Name: "diagram", Title: "Draw the interactions",
		Description: "The interaction diagram in Mermaid: as declared, or as observed in the running system's traces over a window, with drift.",
		Annotations: readOnly()}, s.diagram)
	mcp.AddTool(srv, &mcp.Tool{Name: "trace", Title: "Show a trace",
		Description: "One trace's sequence diagram (Mermaid) and its spans' summary, from the running system's trace hub.",
		Annotations: readOnly()}, s.trace)
	mcp.AddTool(srv, &mcp.Tool{Name: "dead_letters", Title: "List dead letters",
		Description: "The events consumers gave up on, oldest first: group, type, subject, attempts, last error.",
		Annotations: readOnly()}, s.deadLetters)
	mcp.AddTool(srv, &mcp.Tool{Name: "explain_order", Title: "Explain an order",
		Description: "One order's case file from its traces: the saga's timeline, the step that failed and why, the policy decisions on its calls (retries, breaker, bulkhead, budget), its events and dead letters, and the declared edges involved.",
		Annotations: readOnly()}, s.explainOrder)
	mcp.AddTool(srv, &mcp.Tool{Name: "validate_config", Title: "Validate a switchyard.yaml",
		Description: "Validates a proposed switchyard.yaml as switchyard loads it; errors name the line, column and key.",
		Annotations: readOnly()}, s.validate)
	mcp.AddTool(srv, &mcp.Tool{Name: "propose_change", Title: "Propose a change",
		Description: "Proposes a change to switchyard.yaml — add_service, add_dependency, publish_event or set a key — as a validated unified diff with the change it makes to the policy analysis and to the declared diagram. Writes the file only when write is true.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: false}}, s.propose)
	mcp.AddTool(srv, &mcp.Tool{Name: "replay_dead_letter", Title: "Replay a dead letter",
		Description: "Publishes a dead letter's event again through the gateway's administrators' API; needs the server to hold an administrator's token.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false)}}, s.replay)
	srv.AddResource(&mcp.Resource{URI: DesignURI, Name: "design", Title: "Communication design document",
		Description: "The design document rendered from switchyard.yaml, the contracts, the event schemas and the sagas, with the policy analysis.",
		MIMEType:    "text/markdown"}, s.designResource)
	return srv
}

// DesignURI is the design document's resource.
const DesignURI = "switchyard://design"

func readOnly() *mcp.ToolAnnotations { return &mcp.ToolAnnotations{ReadOnlyHint: true} }

func ptr[T any](v T) *T { return &v }

// current loads the configuration as it is now.
func (s *server) current() (*config.Config, []byte, error) {
	raw, err := s.Raw()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := s.Load(raw)
	return cfg, raw, err
}

// sagaSteps describes the sagas of cfg by service and name.
func (s *server) sagaSteps(cfg *config.Config) map[string][]saga.StepInfo {
	out := map[string][]saga.StepInfo{}
	if s.Sagas == nil {
		return out
	}
	sagas, err := s.Sagas(cfg)
	if err != nil {
		return out
	}
	for _, sg := range sagas {
		out[sg.Name] = sg.Steps
	}
	return out
}
