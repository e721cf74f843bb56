package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/telemetry"
)

// metricEdges is the ground truth the diagram is checked against, from a source
// that owes nothing to tracing: every process's own counters. A call edge is a
// dependency its rpc client called (rpc_client_calls_total); an event edge is a
// type its bus published (bus_published_total) or its consumer group handled
// (bus_consumed_total). Counts are the counters' values.
func metricEdges(t *testing.T, s *stack, cfg protocolOf) map[string]int {
	t.Helper()
	out := map[string]int{}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, svc := range s.read().Services {
		families, err := telemetry.Scrape(context.Background(), client, svc.URL+"/metrics")
		if err != nil {
			t.Fatalf("%s /metrics: %v", svc.Name, err)
		}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				n := int(m.GetCounter().GetValue())
				if n == 0 {
					continue
				}
				switch name {
				case "rpc_client_calls_total":
					dep := labels["dependency"]
					out[fmt.Sprintf("%s --%s--> %s", svc.Name, cfg(svc.Name, dep), dep)] += n
				case "bus_published_total":
					out[fmt.Sprintf("%s --event--> bus %s", svc.Name, labels["type"])] += n
				case "bus_consumed_total":
					out[fmt.Sprintf("bus --event--> %s %s", labels["group"], labels["type"])] += n
				}
			}
		}
	}
	return out
}

type protocolOf func(from, to string) diagram.Protocol

// After `switchyard load` on a fresh stack, `switchyard diagram` draws exactly the
// edges the processes' own counters say were used — each with the counters' count —
// and no other; its text names every one; and its Mermaid outputs (the flowchart
// and an order's sequence) are saved for the syntax check by the mermaid package.
func TestDiagramDrawsEveryRealEdgeAndNoInventedOne(t *testing.T) {
	s := startUp(t, fullPlatform)
	cfg := builtinConfig(t)
	declared := map[string]diagram.Protocol{}
	for _, e := range diagram.Declared(cfg) {
		declared[e.From+">"+e.To] = e.Protocol
	}
	protocol := func(from, to string) diagram.Protocol { return declared[from+">"+to] }

	load := execInEnv(s.dir, []string{"SWITCHYARD_HUB=127.0.0.1:0"}, "load", "--gateway", "--rate", "20", "--duration", "3s", "--customers", "4", "--settle", "20s")
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("switchyard load: %v\n%s", err, out)
	}
	// Counters and spans settle: wait until two readings a few seconds apart agree.
	var graph diagram.Graph
	var truth map[string]int
	waitUntil(t, "the diagram to match the counters", 30*time.Second, func() bool {
		time.Sleep(1500 * time.Millisecond) // past the exporters' 1 s batching
		out := runDiagram(t, s, "--format", "json")
		graph = diagram.Graph{}
		if err := json.Unmarshal([]byte(out), &graph); err != nil {
			t.Fatalf("diagram --format json: %v\n%s", err, out)
		}
		truth = metricEdges(t, s, protocol)
		return edgeList(drawn(graph)) == edgeList(truth)
	})
	got := drawn(graph)
	for edge, n := range truth {
		if got[edge] != n {
			t.Errorf("counters say %s ×%d; the diagram says ×%d", edge, n, got[edge])
		}
	}
	for edge := range got {
		if _, ok := truth[edge]; !ok {
			t.Errorf("the diagram invents %s", edge)
		}
	}
	// Every service with a database wrote to it within a trace; the gateway has none.
	for _, name := range cfg.ServiceNames() {
		if !slices.ContainsFunc(graph.Edges, func(e diagram.Edge) bool { return e.From == name && e.To == diagram.DatabaseOf(name) }) {
			t.Errorf("no %s --SQL--> %s edge", name, diagram.DatabaseOf(name))
		}
	}
	if slices.ContainsFunc(graph.Edges, func(e diagram.Edge) bool { return e.To == "gateway-db" }) {
		t.Error("the diagram invents a gateway database")
	}

	text := runDiagram(t, s)
	for _, line := range []string{"client", "gateway", "--gRPC-->   inventory", "--event-->  bus --> notifications", "--SQL-->    orders-db", "Drift against"} {
		if !strings.Contains(text, line) {
			t.Errorf("the text diagram lacks %q:\n%s", line, text)
		}
	}
	if !strings.Contains(text, "declared, not seen:  payments --event--> bus  payments.payment.refunded.v1") {
		t.Errorf("the drift report does not list refunds, which the load never makes:\n%s", text)
	}
	t.Logf("switchyard diagram:\n%s", text)

	// Mermaid: the flowchart and the sequence of one order, for the syntax check.
	dir := artifacts(t)
	flow := runDiagram(t, s, "--format", "mermaid")
	if !strings.HasPrefix(flow, "flowchart LR\n") {
		t.Fatalf("flowchart:\n%s", flow)
	}
	var list struct {
		Traces []struct {
			ID string `json:"trace_id"`
		} `json:"traces"`
	}
	getJSON(t, s.read().Hub+"/api/traces?service=payments&limit=1", &list)
	if len(list.Traces) == 0 {
		t.Fatal("no trace reached payments")
	}
	seq := runDiagram(t, s, "--trace", list.Traces[0].ID, "--format", "mermaid")
	for _, want := range []string{"sequenceDiagram", "actor n_client", "n_orders->>n_inventory", "-)n_bus", "n_bus-)n_notifications", "-->>n_client"} {
		if !strings.Contains(seq, want) {
			t.Errorf("the sequence lacks %q:\n%s", want, seq)
		}
	}
	for name, src := range map[string]string{"flowchart.mmd": flow, "sequence.mmd": seq} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mermaidParses(t, filepath.Join(dir, "flowchart.mmd"), filepath.Join(dir, "sequence.mmd"))

	// Saved spans draw the same diagram later, with no stack (an OTLP JSON file).
	saved := filepath.Join(dir, "spans.json")
	fromHub := runDiagram(t, s, "--format", "json", "--since", "1h", "--save", saved)
	fromFile := runDiagram(t, s, "--format", "json", "--file", saved)
	var a, b diagram.Graph
	_ = json.Unmarshal([]byte(fromHub), &a)
	_ = json.Unmarshal([]byte(fromFile), &b)
	if edgeList(drawn(a)) != edgeList(drawn(b)) || len(a.Edges) != len(b.Edges) {
		t.Errorf("the saved spans draw another diagram:\n%s\n---\n%s", fromHub, fromFile)
	}
	if withFlag := runDiagram(t, s, "--json", "--file", saved); withFlag != fromFile {
		t.Errorf("--json is not --format json:\n%s\n---\n%s", withFlag, fromFile)
	}
	// The topology gate over the same spans: nothing is called that the platform
	// does not declare. What it declares and the load never does is named: refunds
	// (no flow of the shop asks for one: a finding the gate makes), and the paths
	// of the storefront the load does not take — the order summary (gateway →
	// payments), the notification stream (gateway → notifications → users' keys) —
	// and voids, which only a capture failing after an authorization causes.
	verify := execIn(s.dir, "verify", "--file", saved)
	out, _ := verify.CombinedOutput()
	if code := verify.ProcessState.ExitCode(); code != 1 {
		t.Errorf("verify exits %d, want 1 (refunds never happen):\n%s", code, out)
	}
	mayBeUnexercised := map[string]bool{
		"payments --event--> bus payments.payment.refunded.v1": true, "bus --event--> notifications payments.payment.refunded.v1": true,
		"payments --event--> bus payments.payment.voided.v1": true, "bus --event--> notifications payments.payment.voided.v1": true,
		"gateway --HTTP--> notifications": true, "gateway --gRPC--> payments": true, "notifications --HTTP--> users": true,
	}
	refunds := false
	for _, line := range strings.Split(string(out), "\n") {
		edge, found := strings.CutSuffix(strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "FAIL")), " "), " declared, never exercised")
		switch {
		case strings.Contains(line, "declared nowhere"):
			t.Errorf("verify finds an edge the platform does not declare: %s", line)
		case found && !mayBeUnexercised[edge]:
			t.Errorf("verify finds %q never exercised, which the load exercises", edge)
		case found && strings.Contains(edge, "refunded"):
			refunds = true
		}
	}
	if !refunds {
		t.Errorf("verify does not name the refunds nobody asks for:\n%s", out)
	}
	// The design document draws the observed traffic and its drift too.
	design := execIn(s.dir, "design", "--observed")
	doc, err := design.Output()
	if err != nil {
		t.Fatalf("design --observed: %v", err)
	}
	for _, want := range []string{"As observed in traces", "```mermaid\nflowchart LR", "declared, not seen: payments --event--> bus payments.payment.refunded.v1"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("design --observed lacks %q", want)
		}
	}
}

// drawn is the diagram's call and event edges in metricEdges' terms.
func drawn(g diagram.Graph) map[string]int {
	out := map[string]int{}
	for _, e := range g.Edges {
		switch {
		case e.Protocol == diagram.SQL || e.From == diagram.Client:
		case e.Protocol == diagram.Event && e.To == diagram.Bus:
			out[fmt.Sprintf("%s --event--> bus %s", e.From, e.Label)] += e.Calls
		case e.Protocol == diagram.Event:
			out[fmt.Sprintf("bus --event--> %s %s", e.To, e.Label)] += e.Calls - e.Retries
		default:
			out[fmt.Sprintf("%s --%s--> %s", e.From, e.Protocol, e.To)] += e.Calls
		}
	}
	return out
}

func edgeList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		keys = append(keys, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

func runDiagram(t *testing.T, s *stack, args ...string) string {
	t.Helper()
	cmd := execIn(s.dir, append([]string{"diagram"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("switchyard diagram %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// The interactions of a Jaeger query API's answer, and one of its traces.
func TestDiagramReadsJaeger(t *testing.T) {
	doc := `{"data":[{"traceID":"00000000000000000000000000000abc","spans":[
	  {"traceID":"abc","spanID":"1","operationName":"POST /v1/orders","references":[],"startTime":1700000000000000,"duration":9000,
	   "tags":[{"key":"span.kind","value":"server"},{"key":"http.response.status_code","value":201}],"processID":"p1"},
	  {"traceID":"abc","spanID":"2","operationName":"inventory POST","references":[{"refType":"CHILD_OF","spanID":"1"}],
	   "startTime":1700000000001000,"duration":3000,"tags":[{"key":"span.kind","value":"client"},{"key":"peer.service","value":"inventory"},{"key":"rpc.system","value":"grpc"}],"processID":"p1"},
	  {"traceID":"abc","spanID":"3","operationName":"POST /switchyard.inventory.v1.InventoryService/","references":[{"refType":"CHILD_OF","spanID":"2"}],
	   "startTime":1700000000001500,"duration":2000,"tags":[{"key":"span.kind","value":"server"},{"key":"http.response.status_code","value":200}],"processID":"p2"}],
	 "processes":{"p1":{"serviceName":"orders"},"p2":{"serviceName":"inventory"}}}]}`
	var asked []string
	jaeger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.String())
		_, _ = w.Write([]byte(doc))
	}))
	defer jaeger.Close()
	out := runInProcess(t, "", "diagram", "--jaeger", jaeger.URL, "--service", "orders", "--since", "1h", "--drift=false")
	for _, want := range []string{"client  --HTTP-->  orders     1 calls", "orders  --gRPC-->  inventory  1 calls"} {
		if !strings.Contains(out, want) {
			t.Errorf("diagram lacks %q:\n%s", want, out)
		}
	}
	seq := runInProcess(t, "", "diagram", "--jaeger", jaeger.URL, "--trace", "00000000000000000000000000000abc", "--format", "mermaid")
	if !strings.Contains(seq, "n_orders->>n_inventory: POST") || !strings.Contains(seq, "n_inventory-->>n_orders: 200") {
		t.Errorf("sequence:\n%s", seq)
	}
	if len(asked) != 2 || !strings.HasPrefix(asked[0], "/api/traces?") || !strings.Contains(asked[0], "service=orders") ||
		asked[1] != "/api/traces/00000000000000000000000000000abc" {
		t.Errorf("asked Jaeger %v", asked)
	}
}
