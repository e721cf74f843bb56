package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/telemetry"
)

// withSimulated replaces a service's block in a platform file (from its key to the
// next service's) with the block in testdata/<file>.
func withSimulated(t *testing.T, platform, service, next, file string) string {
	t.Helper()
	block, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	begin, end := strings.Index(platform, "\n  "+service+":\n"), strings.Index(platform, "\n  "+next+":\n")
	if begin < 0 || end < begin {
		t.Fatalf("no %s block before %s in the platform", service, next)
	}
	return platform[:begin+1] + string(block) + platform[end+1:]
}

// The shop with payments simulated still holds every invariant check can verify
// without payments' ledger, after customers' traffic; orders read the
// simulation's answers through their real client.
func TestTheShopRunsWithPaymentsSimulated(t *testing.T) {
	s := startUp(t, withSimulated(t, fullPlatform, "payments", "notifications", "payments-simulated.yaml"))
	out, err := execIn(s.dir, "load", "--rate", "20", "--duration", "6s", "--customers", "5", "--settle", "60s").CombinedOutput()
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	t.Logf("load:\n%s", out)
	if !strings.Contains(string(out), "CONFIRMED") {
		t.Fatal("no order was confirmed with payments simulated")
	}
	url, _ := s.service("payments")
	families, err := telemetry.Scrape(context.Background(), http.DefaultClient, url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	authorized := 0.0
	for _, m := range families["simulate_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "endpoint" && l.GetValue() == "switchyard.payments.v1.PaymentService/Authorize" {
				authorized += m.GetCounter().GetValue()
			}
		}
	}
	if authorized == 0 {
		t.Fatal("payments' simulation answered no Authorize")
	}
	check, err := execIn(s.dir, "check", "--wait", "30s").CombinedOutput()
	if err != nil || !strings.Contains(string(check), "all invariants hold") {
		t.Fatalf("check: %v\n%s", err, check)
	}
	if !strings.Contains(string(check), "not checked: payments is simulated") {
		t.Errorf("check does not say what it left out:\n%s", check)
	}
	t.Logf("check:\n%s", check)
}
