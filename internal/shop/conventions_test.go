package shop_test

import (
	"bufio"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/internal/shop/shoptest"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform/platformtest"
)

// semconvKeys are the attribute keys of the OpenTelemetry semantic conventions
// the code imports, read from the semconv package's own source.
func semconvKeys(t *testing.T) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	scanSemconv(t, "attribute_group.go", regexp.MustCompile(`attribute\.Key\("([a-z0-9_.]+)"\)`), func(m []string) { keys[m[1]] = true })
	if len(keys) < 500 {
		t.Fatalf("read only %d keys of the conventions", len(keys))
	}
	return keys
}

// semconvMetrics are the metric names of the conventions the code imports, as
// OpenTelemetry's Prometheus export writes them (http.server.request.duration,
// in seconds, is http_server_request_duration_seconds).
func semconvMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(semconvDir(t), "*conv", "metric.go"))
	for _, f := range files {
		// An instrument's Name() returns its name; its Unit(), declared after it,
		// the unit.
		var method, name string
		scanSemconv(t, f, regexp.MustCompile(`^func \(\w+\) (Name|Unit)\(\) string \{$|^\treturn "([^"]*)"$`), func(m []string) {
			switch {
			case m[1] != "":
				method = m[1]
			case method == "Name":
				name, method = m[2], ""
			case method == "Unit" && name != "":
				base := strings.ReplaceAll(name, ".", "_") + map[string]string{"s": "_seconds", "By": "_bytes", "1": "_ratio"}[m[2]]
				names[base], names[base+"_total"] = true, true
				name, method = "", ""
			}
		})
	}
	if len(names) < 100 {
		t.Fatalf("read only %d metric names of the conventions", len(names))
	}
	return names
}

// semconvDir is the directory of the semconv package the code imports.
func semconvDir(t *testing.T) string {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.opentelemetry.io/otel").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(dir)), "semconv", "v1.43.0")
}

// scanSemconv runs fn on each line of a file of the semconv package that re matches.
func scanSemconv(t *testing.T, file string, re *regexp.Regexp, fn func([]string)) {
	t.Helper()
	if !filepath.IsAbs(file) {
		file = filepath.Join(semconvDir(t), file)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			fn(m)
		}
	}
}

// The spans of the shop's flows — HTTP and gRPC, served and called, events
// created, sent, processed and settled, SQL, sagas — speak the OpenTelemetry
// semantic conventions of the semconv version the code imports: each kind
// carries the keys the conventions ask of it, gRPC spans are named
// package.Service/Method, failures carry error.type, and every key is either
// one the conventions define or Switchyard's own, under switchyard.* — never a
// made-up key inside their namespaces.
func TestTheSpansSpeakTheOpenTelemetryConventions(t *testing.T) {
	known := semconvKeys(t)
	shop := shoptest.Start(t, shoptest.Options{Gateway: true})
	ann := shop.Customer("ann")
	var spans []observe.Span
	for _, flow := range []struct {
		card, final string
		item        orders.ItemRequest
	}{
		{commerce.CardApproved, "orders.order.confirmed.v1", shoptest.Item("prod-aud-001", 1)},
		{commerce.CardApproved, "orders.order.cancelled.v1", shoptest.Item("prod-mon-002", 6)}, // 5 in stock
	} {
		id, header := platformtest.Traced()
		header.Set("Idempotency-Key", flow.final)
		r := shop.Do("POST", "gateway", "/api/v2/orders", ann.Token,
			orders.PlaceRequest{Items: []orders.ItemRequest{flow.item}, Payment: &orders.PaymentRequest{CardNumber: flow.card}}, header)
		if r.Code != http.StatusCreated {
			t.Fatalf("place: %d %s", r.Code, r.Raw)
		}
		// The trace is whole once notifications has acknowledged the last event.
		var trace observe.Trace
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			trace = shop.Trace(id)
			if slices.ContainsFunc(trace.Spans, func(s observe.Span) bool {
				return s.Service == "notifications" && s.Attr("messaging.operation.name") == "ack" && s.Attr("cloudevents.event_type") == flow.final
			}) {
				break
			}
		}
		spans = append(spans, trace.Spans...)
	}

	rpcName := regexp.MustCompile(`^[a-z][\w.]*\.[A-Z]\w*/[A-Z]\w*$`)
	seen := map[string]int{}
	want := func(s observe.Span, kind string, keys ...string) {
		seen[kind]++
		for _, k := range keys {
			if s.Attr(k) == "" {
				t.Errorf("%s span %q of %s has no %s: %v", kind, s.Name, s.Service, k, s.Attributes)
			}
		}
	}
	for _, s := range spans {
		keys := []string{}
		for k := range s.Attributes {
			keys = append(keys, k)
		}
		for _, e := range s.Events {
			for k := range e.Attributes {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			if !known[k] && !strings.HasPrefix(k, "switchyard.") {
				t.Errorf("span %q of %s: %s is neither a key of the conventions nor under switchyard.*", s.Name, s.Service, k)
			}
		}
		op := s.Attr("messaging.operation.name")
		switch {
		case s.Attr("db.system.name") != "":
			want(s, "sql", "db.namespace")
		case op != "":
			want(s, "messaging "+op, "messaging.system", "messaging.operation.type", "messaging.destination.name",
				"messaging.message.id", "cloudevents.event_type")
			if s.Kind == observe.Consumer || s.Attr("messaging.operation.type") == "settle" {
				want(s, "consumed", "messaging.consumer.group.name")
			}
		case s.Attr("rpc.system.name") != "":
			want(s, "grpc "+string(s.Kind), "rpc.method")
			if s.Name != s.Attr("rpc.method") || !rpcName.MatchString(s.Name) {
				t.Errorf("gRPC span %q of %s: want it named package.Service/Method, as its rpc.method %q", s.Name, s.Service, s.Attr("rpc.method"))
			}
			if s.Kind == observe.Client {
				want(s, "grpc client", "service.peer.name")
			}
		case s.Kind == observe.Server:
			want(s, "http server", "http.request.method", "url.scheme", "url.path", "http.route", "http.response.status_code")
		case s.Kind == observe.Client:
			want(s, "http client", "http.request.method", "url.scheme", "url.full", "service.peer.name", "server.address")
			if strings.Contains(s.Attr("url.full"), "?") && !strings.Contains(s.Attr("url.full"), "REDACTED") {
				t.Errorf("client span %q keeps its query's values in url.full: %s", s.Name, s.Attr("url.full"))
			}
		}
		if s.Kind == observe.Client && s.Attr("rpc.response.status_code") == "FAILED_PRECONDITION" {
			seen["refused call"]++
			if s.Attr("error.type") != "FAILED_PRECONDITION" {
				t.Errorf("the refused reservation's client span has error.type %q", s.Attr("error.type"))
			}
		}
	}
	for _, kind := range []string{"sql", "http server", "http client", "grpc server", "grpc client",
		"messaging create", "messaging send", "messaging process", "messaging ack", "consumed", "refused call"} {
		if seen[kind] == 0 {
			t.Errorf("no %s span among the flows' %d spans (saw %v)", kind, len(spans), seen)
		}
	}
}

// No metric has two shapes. Across every service of the shop, a name is always
// the same type with the same labels; and a name the OpenTelemetry conventions
// give one of their metrics (as their Prometheus export writes it) is that
// metric — its labels are the conventions' attributes — so that a library's
// OpenTelemetry instruments and ours can share a registry and a dashboard.
func TestNoMetricNameHasTwoShapes(t *testing.T) {
	conventional, labels := semconvMetrics(t), map[string]bool{}
	for k := range semconvKeys(t) {
		labels[strings.ReplaceAll(k, ".", "_")] = true // as Prometheus labels
	}
	shop := shoptest.Start(t, shoptest.Options{Gateway: true})
	ann := shop.Customer("ann")
	if r := shop.Order(ann, "k1", commerce.CardApproved, shoptest.Item("prod-aud-001", 1)); r.Code != http.StatusCreated {
		t.Fatalf("place: %d %s", r.Code, r.Raw)
	}
	type shape struct {
		kind   model.MetricType
		labels string
		where  string
	}
	shapes := map[string]shape{}
	for _, service := range []string{"gateway", "users", "catalog", "orders", "inventory", "payments", "notifications"} {
		resp, err := http.Get(shop.URL(service) + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s /metrics: %v", service, err)
		}
		for name, f := range families {
			has := map[string]bool{}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					has[l.GetName()] = true
				}
			}
			names := slices.Sorted(maps.Keys(has))
			got := shape{kind: model.MetricType(f.GetType()), labels: strings.Join(names, ","), where: service}
			if was, ok := shapes[name]; ok && (was.kind != got.kind || was.labels != got.labels) {
				t.Errorf("%s is a %v {%s} on %s but a %v {%s} on %s", name, was.kind, was.labels, was.where, got.kind, got.labels, service)
			}
			shapes[name] = got
			if conventional[name] {
				for _, l := range names {
					if !labels[l] {
						t.Errorf("%s on %s is named as an OpenTelemetry metric but has label %s, no attribute of its conventions", name, service, l)
					}
				}
			}
		}
	}
	if len(shapes) < 40 {
		t.Errorf("read only %d metrics: %v", len(shapes), fmt.Sprint(slices.Sorted(maps.Keys(shapes))))
	}
}
