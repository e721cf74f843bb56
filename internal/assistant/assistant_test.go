package assistant_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/assistant"
)

const system = `version: 1
services:
  catalog:
    owner: catalog-team
    listen: 127.0.0.1:0
    publishes: [catalog.product.changed.v1]
  orders:
    listen: 127.0.0.1:0
    dependencies:
      catalog: {protocol: rest, policy: {timeout: 2s, try_timeout: 500ms}}
    subscriptions: [catalog.product.changed.v1]
`

// connect serves a system from a file in a temporary directory over in-memory
// transports, as switchyard mcp does over stdio.
func connect(t *testing.T) (*mcp.ClientSession, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchyard.yaml")
	if err := os.WriteFile(path, []byte(system), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := assistant.New(assistant.Options{
		Source: "switchyard.yaml",
		Raw:    func() ([]byte, error) { return os.ReadFile(path) },
		Load:   func(raw []byte) (*config.Config, error) { return config.Load(path, raw, nil) },
		Write:  func(raw []byte) error { return os.WriteFile(path, raw, 0o600) },
		Analyse: func(c *config.Config, rate float64) (analysis.Report, error) {
			return analysis.Analyze(analysis.Input{Config: c, Rate: rate}), nil
		},
	})
	st, ct := mcp.NewInMemoryTransports()
	ctx := context.Background()
	go func() { _ = srv.Run(ctx, st) }()
	session, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session, path
}

type proposal struct {
	Patch      string
	Valid      bool
	Written    bool
	Errors     []struct{ Key, Message string }
	EdgesAdded []struct{ From, To, Label string } `json:"edges_added"`
	Analysis   *struct {
		Added []struct{ Rule, Subject string }
	}
}

func propose(t *testing.T, s *mcp.ClientSession, args map[string]any) (proposal, string, bool) {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "propose_change", Arguments: args})
	if err != nil {
		return proposal{}, err.Error(), true
	}
	var p proposal
	if !res.IsError {
		raw, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
	}
	return p, res.Content[0].(*mcp.TextContent).Text, res.IsError
}

// Each kind of change comes back as a patch, validated, with what it does to
// the analysis and the declared diagram; only write: true writes it.
func TestChangesAreProposedAsValidatedPatches(t *testing.T) {
	s, path := connect(t)
	before, _ := os.ReadFile(path)

	p, text, isErr := propose(t, s, map[string]any{"change": "add_service", "service": "reviews", "owner": "catalog-team", "description": "Product reviews."})
	if isErr || !p.Valid || !strings.Contains(p.Patch, "+  reviews:\n+    owner: catalog-team\n") || !strings.Contains(p.Patch, "+        - endpoint: GET /v1/reviews/{id}") {
		t.Errorf("add_service: %v %s", isErr, text)
	}
	p, text, isErr = propose(t, s, map[string]any{"change": "publish_event", "service": "orders", "event": "orders.order.placed.v1"})
	if isErr || !p.Valid || !strings.Contains(p.Patch, "+    publishes:\n+      - orders.order.placed.v1") || len(p.EdgesAdded) != 1 ||
		p.Analysis == nil || len(p.Analysis.Added) != 1 || p.Analysis.Added[0].Rule != analysis.RuleUnconsumedEvent {
		t.Errorf("publish_event: the patch, the new edge and the new finding (nobody consumes it): %v %s %+v", isErr, text, p)
	}
	p, text, isErr = propose(t, s, map[string]any{"change": "set", "key": "services.orders.dependencies.catalog.policy.try_timeout", "value": "5s"})
	if isErr || p.Valid || len(p.Errors) != 1 || p.Errors[0].Key != "services.orders.dependencies.catalog.policy.try_timeout" {
		t.Errorf("an invalid change is proposed with its error: %v %s %+v", isErr, text, p)
	}
	if _, text, isErr = propose(t, s, map[string]any{"change": "set", "key": "services.orders.dependencies.catalog.policy.try_timeout", "value": "5s", "write": true}); !isErr || !strings.Contains(text, "write: the changed configuration is not valid") {
		t.Errorf("writing an invalid change: %v %s", isErr, text)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("a proposal changed the file")
	}

	// A dependency back from catalog to orders would close a cycle: proposed, refused.
	p, text, isErr = propose(t, s, map[string]any{"change": "add_dependency", "service": "catalog", "to": "orders", "protocol": "grpc"})
	if isErr || p.Valid || len(p.Errors) == 0 || !strings.Contains(p.Errors[0].Message, "cycle") {
		t.Errorf("add_dependency catalog → orders: %v %s %+v", isErr, text, p.Errors)
	}
	p, text, isErr = propose(t, s, map[string]any{"change": "set", "key": "services.orders.dependencies.catalog.policy.retry.max_attempts", "value": "2", "write": true})
	if isErr || !p.Written {
		t.Fatalf("a valid change with write: %v %s", isErr, text)
	}
	after, _ := os.ReadFile(path)
	if !strings.Contains(string(after), "policy: {timeout: 2s, try_timeout: 500ms, retry: {max_attempts: 2}}") {
		t.Errorf("written:\n%s", after)
	}
	cfg, err := config.Load(path, after, nil)
	if err != nil || cfg.Service("orders").Dependencies["catalog"].Policy.Retry.MaxAttempts != 2 {
		t.Errorf("the written file: %v", err)
	}
}
