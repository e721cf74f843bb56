package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// assistant starts `switchyard mcp` in dir over stdio with the SDK's own client.
func assistant(t *testing.T, dir string, env ...string) *mcp.ClientSession {
	t.Helper()
	cmd := exec.Command(binary, "mcp")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	client := mcp.NewClient(&mcp.Implementation{Name: "switchyard-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = session.Close() })
	return session
}

// callTool calls a tool and returns its text, its structured output decoded into
// out (when not nil), and whether it was an error — a tool error or a protocol
// error, both of which are the MCP errors a client sees.
func callTool(t *testing.T, s *mcp.ClientSession, name string, args map[string]any, out any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return err.Error(), true
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if out != nil && !res.IsError && res.StructuredContent != nil {
		raw, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: structured output: %v\n%s", name, err, raw)
		}
	}
	return b.String(), res.IsError
}

// An assistant connected to the running shop through `switchyard mcp`: it lists
// the tools and calls every one; for an order paid with the declining test card,
// explain_order names payments' authorization and the decline reason; a replay
// without an administrator's token is refused, and bad input of every kind is an
// MCP error naming the field.
func TestAnAssistantWorksOnTheRunningShop(t *testing.T) {
	s := startUp(t, fullPlatform)
	token := s.customer("ann@example.com")
	s.customer("root@example.com")
	if out, err := execIn(s.dir, "grant", "root@example.com", "admin").CombinedOutput(); err != nil {
		t.Fatalf("grant: %v\n%s", err, out)
	}
	usersURL, _ := s.service("users")
	code, login := call(t, "POST", usersURL+"/v1/auth/login", "", `{"email":"root@example.com","password":"correct-horse-battery"}`)
	if code != 200 {
		t.Fatalf("admin login: %d %v", code, login)
	}
	admin := login["access_token"].(string)
	order, _ := s.place(token, "mcp-1", `{"items":[{"product_id":"prod-kbd-002","quantity":1}],"payment":{"card_number":"4000000000000002"}}`)
	if order["status"] != "CANCELLED" {
		t.Fatalf("the declining card: %v", order)
	}
	orderID := order["id"].(string)
	s.publishPoison("01a20000-0000-7000-8000-0000000000c1")

	session := assistant(t, s.dir)
	ctx := context.Background()
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("tool %s documents no description or input schema", tool.Name)
		}
	}
	want := []string{"analyze", "dead_letters", "describe", "diagram", "explain_order", "propose_change", "replay_dead_letter", "trace", "validate_config"}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}

	var desc struct {
		Services []struct{ Name, Owner string }
		Edges    []struct{ From, To, Protocol, Policy string }
	}
	if text, isErr := callTool(t, session, "describe", nil, &desc); isErr || len(desc.Services) != 7 || len(desc.Edges) < 8 {
		t.Errorf("describe: %v %s", isErr, text)
	}
	if text, isErr := callTool(t, session, "analyze", map[string]any{"set": []string{"services.orders.dependencies.payments.policy.retry.max_attempts=5"}}, nil); isErr ||
		!strings.Contains(text, "retries-exceed-timeout  orders → payments") {
		t.Errorf("analyze with a change: %v %s", isErr, text)
	}
	if text, isErr := callTool(t, session, "diagram", map[string]any{"source": "declared"}, nil); isErr || !strings.Contains(text, "flowchart") {
		t.Errorf("diagram declared: %v %s", isErr, text)
	}

	// The order's case file, once its spans reached the hub.
	var cf struct {
		Outcome    string
		Traces     []string
		FailedStep *struct{ Step, About, Reason, Result string } `json:"failed_step"`
		Timeline   []struct{ Step, Action, Result string }
		Edges      []struct{ From, To string }
		Summary    string
	}
	var text string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var isErr bool
		text, isErr = callTool(t, session, "explain_order", map[string]any{"order_id": orderID}, &cf)
		if !isErr && cf.FailedStep != nil && slices.ContainsFunc(cf.Timeline, func(s struct{ Step, Action, Result string }) bool { return s.Action != "do" }) ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("explain_order:\n%s", text)
	if cf.FailedStep == nil || cf.FailedStep.Step != "authorize_payment" || !strings.Contains(cf.FailedStep.About, "payments.Authorize") ||
		!strings.Contains(cf.FailedStep.Reason, "card declined") || cf.Outcome != "compensated" {
		t.Errorf("the case file does not name payments' authorization and the decline: %+v", cf.FailedStep)
	}
	if !strings.Contains(text, "authorize") || !strings.Contains(text, "card declined") ||
		!slices.ContainsFunc(cf.Edges, func(e struct{ From, To string }) bool { return e.From == "orders" && e.To == "payments" }) {
		t.Errorf("the summary or the edges miss the story:\n%s", text)
	}
	if text, isErr := callTool(t, session, "trace", map[string]any{"trace_id": cf.Traces[0]}, nil); isErr || !strings.Contains(text, "sequenceDiagram") {
		t.Errorf("trace: %v %s", isErr, text)
	}
	if text, isErr := callTool(t, session, "diagram", map[string]any{"source": "observed", "since": "10m"}, nil); isErr || !strings.Contains(text, "orders") {
		t.Errorf("diagram observed: %v %s", isErr, text)
	}

	var letters struct {
		DeadLetters []struct{ ID, Group, Type string } `json:"dead_letters"`
	}
	deadline = time.Now().Add(15 * time.Second)
	for len(letters.DeadLetters) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		callTool(t, session, "dead_letters", map[string]any{"group": "catalog"}, &letters)
	}
	if len(letters.DeadLetters) != 1 || letters.DeadLetters[0].Type != "inventory.stock.changed.v1" {
		t.Fatalf("dead letters: %+v", letters)
	}
	letter := letters.DeadLetters[0].ID

	raw, err := os.ReadFile(filepath.Join(s.dir, "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var valid struct{ Valid bool }
	if text, isErr := callTool(t, session, "validate_config", map[string]any{"yaml": string(raw)}, &valid); isErr || !valid.Valid {
		t.Errorf("validate the file itself: %v %s", isErr, text)
	}
	broken := strings.Replace(string(raw), "    owner: catalog-team", "    owner: catalog-team\n    ownr: typo", 1)
	var invalid struct {
		Valid  bool
		Errors []struct {
			Line         int
			Key, Message string
		}
	}
	if text, isErr := callTool(t, session, "validate_config", map[string]any{"yaml": broken}, &invalid); isErr || invalid.Valid ||
		len(invalid.Errors) != 1 || invalid.Errors[0].Line == 0 || invalid.Errors[0].Key != "services.catalog.ownr" {
		t.Errorf("validate a typo: %v %s", isErr, text)
	}
	var proposal struct {
		Patch      string
		Valid      bool
		Written    bool
		EdgesAdded []struct{ From, To string } `json:"edges_added"`
	}
	if text, isErr := callTool(t, session, "propose_change", map[string]any{"change": "add_dependency", "service": "notifications", "to": "catalog"}, &proposal); isErr ||
		!proposal.Valid || proposal.Written || !strings.Contains(proposal.Patch, "+      catalog:") || len(proposal.EdgesAdded) != 1 {
		t.Errorf("propose a dependency: %v %s", isErr, text)
	}
	if after, _ := os.ReadFile(filepath.Join(s.dir, "switchyard.yaml")); string(after) != string(raw) {
		t.Error("a proposal without write: true changed the file")
	}

	// Replays: refused without a token, and with a customer's; an administrator's
	// reaches the bus, which refuses to publish an event that breaks its schema.
	if text, isErr := callTool(t, session, "replay_dead_letter", map[string]any{"id": letter}, nil); !isErr || !strings.Contains(text, "administrator's token") {
		t.Errorf("a replay without a token: %v %s", isErr, text)
	}
	customer := assistant(t, s.dir, "SWITCHYARD_ADMIN_TOKEN="+token)
	if text, isErr := callTool(t, customer, "replay_dead_letter", map[string]any{"id": letter}, nil); !isErr || !strings.Contains(text, "403") {
		t.Errorf("a replay with a customer's token: %v %s", isErr, text)
	}
	root := assistant(t, s.dir, "SWITCHYARD_ADMIN_TOKEN="+admin)
	if text, isErr := callTool(t, root, "replay_dead_letter", map[string]any{"id": letter}, nil); !isErr || !strings.Contains(text, "minimum: got -5, want 0") {
		t.Errorf("an administrator's replay of a broken event: %v %s", isErr, text)
	}

	res, err := session.ReadResource(ctx, &mcp.ReadResourceParams{URI: "switchyard://design"})
	if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, "## Policy analysis") {
		t.Errorf("the design resource: %v", err)
	}

	// Bad input, each an MCP error naming what is wrong.
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"explain_order", map[string]any{}, "order_id"},
		{"explain_order", map[string]any{"order_id": "no such order"}, "order_id"},
		{"trace", map[string]any{"trace_id": "xyz"}, "trace_id"},
		{"propose_change", map[string]any{"change": "add_dependency", "service": "nope", "to": "catalog"}, `service: no service "nope"`},
		{"propose_change", map[string]any{"change": "rename"}, "change: want add_service"},
		{"validate_config", map[string]any{"yaml": strings.Repeat("# padding\n", 100_000)}, "yaml: 1000000 bytes"},
		{"dead_letters", map[string]any{"group": "nobody"}, `group: no service "nobody"`},
		{"diagram", map[string]any{"source": "imagined"}, "source: want declared or observed"},
		{"analyze", map[string]any{"set": []string{"justakey"}}, "set[0]: want key=value"},
		{"describe", map[string]any{"extra": 1}, "extra"},
	} {
		text, isErr := callTool(t, session, c.tool, c.args, nil)
		if !isErr || !strings.Contains(text, c.want) {
			t.Errorf("%s %v: error %v %q, want one naming %q", c.tool, c.args, isErr, text, c.want)
		}
	}
}

// The streamable HTTP transport, on loopback only: a session lists the tools and
// describes the system; any other address is refused before anything listens.
func TestTheAssistantServesStreamableHTTPOnLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, dir, "mcp", "--http", "0.0.0.0:7777"); code != 2 || !strings.Contains(errOut, "loopback") {
		t.Errorf("a public address: exit %d %s", code, errOut)
	}
	addr := freePort(t)
	cmd := exec.Command(binary, "mcp", "--http", addr)
	cmd.Dir, cmd.Env = dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	client := mcp.NewClient(&mcp.Implementation{Name: "switchyard-test", Version: "1"}, nil)
	var session *mcp.ClientSession
	waitUntil(t, "the MCP endpoint", 10*time.Second, func() bool {
		var err error
		session, err = client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: "http://" + addr}, nil)
		return err == nil
	})
	defer session.Close()
	var desc struct{ Services []struct{ Name string } }
	if text, isErr := callTool(t, session, "describe", nil, &desc); isErr || len(desc.Services) != 7 {
		t.Errorf("describe over HTTP: %v %s", isErr, text)
	}
}
