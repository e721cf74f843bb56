package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard"
)

// fullPlatform is the built-in platform (switchyard.yaml) on free ports, with a
// quicker discovery heartbeat.
var fullPlatform = strings.Replace(
	regexp.MustCompile(`listen: 127\.0\.0\.1:\d+`).ReplaceAllString(string(switchyard.DefaultConfig), "listen: 127.0.0.1:0"),
	"heartbeat: 1s", "heartbeat: 500ms", 1)

var (
	grpcurlOnce sync.Once
	grpcurlPath string
	grpcurlErr  error
)

// grpcurl builds the stock grpcurl from its Go module (pinned in tools/go.mod).
func grpcurl(t *testing.T) string {
	t.Helper()
	grpcurlOnce.Do(func() {
		grpcurlPath = filepath.Join(filepath.Dir(binary), "grpcurl")
		cmd := exec.Command("go", "build", "-modfile=../../tools/go.mod", "-o", grpcurlPath, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
		out, err := cmd.CombinedOutput()
		if err != nil {
			grpcurlErr = err
			t.Logf("%s", out)
		}
	})
	if grpcurlErr != nil {
		t.Fatalf("build grpcurl: %v", grpcurlErr)
	}
	return grpcurlPath
}

func (s *stack) token(as, to string) string {
	s.t.Helper()
	cmd := execIn(s.dir, "token", "--as", as, "--for", to)
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("switchyard token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func runGrpcurl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(grpcurl(t), args...).CombinedOutput()
	return string(out), err
}

type stockLevel struct {
	ProductID string `json:"productId"`
	Available string `json:"available"`
	Reserved  string `json:"reserved"`
	Sold      string `json:"sold"`
}

func (s *stack) stock(t *testing.T, addr, token, product string) stockLevel {
	t.Helper()
	out, err := runGrpcurl(t, "-plaintext", "-H", "service-authorization: Bearer "+token,
		"-d", `{"product_ids":["`+product+`"]}`, addr, "switchyard.inventory.v1.InventoryService/GetStock")
	if err != nil {
		t.Fatalf("grpcurl GetStock: %v\n%s", err, out)
	}
	var resp struct{ Stock []stockLevel }
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Stock) != 1 {
		t.Fatalf("GetStock output %q: %v", out, err)
	}
	return resp.Stock[0]
}

// An order crosses users and catalog (REST), inventory and payments (gRPC) through
// the client stack with service credentials; stock grpcurl lists and calls inventory with them and is
// refused without; a call straight to a service port without credentials, or with a
// forged identity header, is refused and changes nothing.
func TestOrdersCallTheirDependenciesWithServiceCredentials(t *testing.T) {
	s := startUp(t, fullPlatform)
	usersURL, _ := s.service("users")
	ordersURL, _ := s.service("orders")
	inventoryURL, _ := s.service("inventory")
	invAddr := strings.TrimPrefix(inventoryURL, "http://")

	call(t, "POST", usersURL+"/v1/auth/register", "", `{"email":"ann@example.com","password":"correct-horse-battery","name":"Ann"}`)
	_, login := call(t, "POST", usersURL+"/v1/auth/login", "", `{"email":"ann@example.com","password":"correct-horse-battery"}`)
	token := login["access_token"].(string)

	ordersTok := s.token("orders", "inventory")
	before := s.stock(t, invAddr, ordersTok, "prod-kbd-001")

	code, order := callWith(t, "POST", ordersURL+"/v1/orders", token,
		`{"items":[{"product_id":"prod-kbd-001","quantity":2}],"payment":{"card_number":"4242424242424242"}}`, map[string]string{"Idempotency-Key": "e2e-1"})
	if code != 201 || order["status"] != "PENDING" {
		t.Fatalf("place order: %d %v", code, order)
	}
	code, order = callWith(t, "GET", ordersURL+"/v1/orders/"+order["id"].(string), token, "", map[string]string{"Prefer": "wait=5"})
	if code != 200 || order["status"] != "CONFIRMED" {
		t.Fatalf("order after its saga: %d %v", code, order)
	}
	after := s.stock(t, invAddr, ordersTok, "prod-kbd-001")
	if after.Sold != "2" || after.Reserved != "" || before.Sold != "" {
		t.Errorf("before %+v, after %+v; want 2 sold to the order", before, after)
	}

	// grpcurl lists the service with credentials; without, or as a service inventory
	// does not accept, it is refused.
	out, err := runGrpcurl(t, "-plaintext", "-H", "service-authorization: Bearer "+ordersTok, invAddr, "list")
	if err != nil || !strings.Contains(out, "switchyard.inventory.v1.InventoryService") || !strings.Contains(out, "grpc.health.v1.Health") {
		t.Errorf("grpcurl list with credentials: %v\n%s", err, out)
	}
	if out, err := runGrpcurl(t, "-plaintext", invAddr, "list"); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("grpcurl list without credentials: %v\n%s", err, out)
	}
	out, err = runGrpcurl(t, "-plaintext", "-H", "service-authorization: Bearer "+s.token("gateway", "inventory"),
		"-d", `{"order_id":"forged","items":[{"product_id":"prod-kbd-001","quantity":500}]}`, invAddr, "switchyard.inventory.v1.InventoryService/ReserveStock")
	if err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Errorf("ReserveStock as a service inventory does not accept: %v\n%s", err, out)
	}
	out, err = runGrpcurl(t, "-plaintext", "-H", "x-user-id: admin", "-H", "x-service: orders",
		"-d", `{"order_id":"forged","items":[{"product_id":"prod-kbd-001","quantity":500}]}`, invAddr, "switchyard.inventory.v1.InventoryService/ReserveStock")
	if err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("ReserveStock with forged headers: %v\n%s", err, out)
	}
	if out, err := runGrpcurl(t, "-plaintext", "-H", "service-authorization: Bearer "+ordersTok, invAddr, "grpc.health.v1.Health/Check"); err != nil || !strings.Contains(out, `"SERVING"`) {
		t.Errorf("gRPC health check: %v\n%s", err, out)
	}
	if again := s.stock(t, invAddr, ordersTok, "prod-kbd-001"); again != after {
		t.Errorf("refused calls changed the stock: %+v then %+v", after, again)
	}

	// The users endpoint for other services refuses a caller without a service token,
	// forged identity headers or not.
	me := login["access_token"].(string)
	_, profile := call(t, "GET", usersURL+"/v1/users/me", me, "")
	code, _ = callWith(t, "GET", usersURL+"/v1/users/"+profile["id"].(string), me, "", map[string]string{"X-User-ID": profile["id"].(string), "X-Service": "orders"})
	if code != 401 {
		t.Errorf("users/{id} without a service token: %d, want 401", code)
	}
}

func callWith(t *testing.T, method, url, token, body string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	return callHeaders(t, method, url, token, body, headers)
}

func TestTokenCommandNeedsBothEnds(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "switchyard.yaml"), []byte(platformFile), 0o600)
	cmd := execIn(dir, "token", "--as", "orders")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "--for") {
		t.Errorf("token without --for: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}
