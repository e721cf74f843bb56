package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/store/storetest"
)

// customer registers and logs in someone on a running stack and returns a token.
func (s *stack) customer(email string) string {
	s.t.Helper()
	usersURL, _ := s.service("users")
	if code, body := call(s.t, "POST", usersURL+"/v1/auth/register", "", `{"email":"`+email+`","password":"correct-horse-battery","name":"Shopper"}`); code != 201 {
		s.t.Fatalf("register: %d %v", code, body)
	}
	code, login := call(s.t, "POST", usersURL+"/v1/auth/login", "", `{"email":"`+email+`","password":"correct-horse-battery"}`)
	if code != 200 {
		s.t.Fatalf("login: %d %v", code, login)
	}
	return login["access_token"].(string)
}

// place posts an order and waits for it to finish (a long poll), returning the
// final order and how long placing to finishing took.
func (s *stack) place(token, key, body string) (map[string]any, time.Duration) {
	s.t.Helper()
	ordersURL, _ := s.service("orders")
	begun := time.Now()
	code, order := callHeaders(s.t, "POST", ordersURL+"/v2/orders", token, body, map[string]string{"Idempotency-Key": key})
	if code != 201 {
		s.t.Fatalf("place order: %d %v", code, order)
	}
	code, order = callHeaders(s.t, "GET", ordersURL+"/v2/orders/"+order["id"].(string), token, "", map[string]string{"Prefer": "wait=5"})
	if code != 200 {
		s.t.Fatalf("order: %d %v", code, order)
	}
	return order, time.Since(begun)
}

// A newcomer's three orders under `up`: one confirmed within two seconds, one with
// a declining card cancelled with its reason and its stock given back, one beyond
// the stock cancelled; then `switchyard check` agrees.
func TestOrdersUnderUpEndAsACustomerExpects(t *testing.T) {
	targets := map[string][]string{"sqlite": nil}
	if server := os.Getenv(storetest.PostgresEnv); server != "" {
		targets["postgres"] = []string{"DATABASE_URL=" + storetest.PostgresDatabase(t, server)}
	}
	for name, extraEnv := range targets {
		t.Run(name, func(t *testing.T) {
			s := startUp(t, fullPlatform, extraEnv...)
			if name == "postgres" {
				dropServiceDatabases(t, extraEnv[0])
			}
			invURL, _ := s.service("inventory")
			inv, tok := strings.TrimPrefix(invURL, "http://"), s.token("orders", "inventory")
			token := s.customer("ann@example.com")

			order, took := s.place(token, "k1", `{"items":[{"product_id":"prod-aud-001","quantity":1}],"payment":{"card_number":"4242424242424242"}}`)
			if order["status"] != "CONFIRMED" || took > 2*time.Second {
				t.Errorf("approved card: %v after %v, want CONFIRMED within 2s", order["status"], took)
			}
			t.Logf("confirmed %v after placing", took.Round(time.Millisecond))

			before := s.stock(t, inv, tok, "prod-kbd-002")
			order, _ = s.place(token, "k2", `{"items":[{"product_id":"prod-kbd-002","quantity":3}],"payment":{"card_number":"4000000000000002"}}`)
			if order["status"] != "CANCELLED" || order["reason"] != "payment declined: card declined" {
				t.Errorf("declining card: %v %q", order["status"], order["reason"])
			}
			if after := s.stock(t, inv, tok, "prod-kbd-002"); after != before {
				t.Errorf("stock before %+v, after the declined order %+v: not given back", before, after)
			}

			order, _ = s.place(token, "k3", `{"items":[{"product_id":"prod-mon-002","quantity":6}],"payment":{"card_number":"4242424242424242"}}`)
			if order["status"] != "CANCELLED" || !strings.HasPrefix(order["reason"].(string), "out of stock") {
				t.Errorf("beyond the stock: %v %q", order["status"], order["reason"])
			}

			out, err := execInEnv(s.dir, extraEnv, "check", "--wait", "10s").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "all invariants hold") {
				t.Errorf("switchyard check: %v\n%s", err, out)
			}
		})
	}
}

func execInEnv(dir string, extraEnv []string, args ...string) *exec.Cmd {
	cmd := execIn(dir, args...)
	cmd.Env = append(cmd.Env, extraEnv...)
	return cmd
}

// kill -9 of orders, then inventory, then payments, while `switchyard load` runs:
// after each restart `switchyard check` passes within 30 seconds — no lost order,
// no double charge, stock conserved — and again when the load is over.
func TestKilledServicesDuringLoadLoseNothing(t *testing.T) {
	s := startUp(t, fullPlatform)
	loadOut, loadErr := &lockedBuffer{}, &lockedBuffer{}
	// 50 orders/s, well below the knee of two cores (at 100, on 2026-12-02, orders'
	// relay fell 15 s behind before any kill): the kills are what is measured.
	load := execIn(s.dir, "load", "--rate", "50", "--duration", "60s", "--customers", "10")
	load.Stdout, load.Stderr = loadOut, loadErr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loaded := make(chan error, 1)
	go func() { loaded <- load.Wait() }()
	waitUntil(t, "load under way", 15*time.Second, func() bool { return strings.Contains(loadErr.String(), "accepted") })

	for _, svc := range []string{"orders", "inventory", "payments"} {
		time.Sleep(10 * time.Second) // the load runs on between kills
		url, pid := s.service(svc)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := waitUntil(t, svc+" restarted", 10*time.Second, func() bool {
			_, now := s.service(svc)
			return now != 0 && now != pid && ready(url)
		})
		begun := time.Now()
		out, err := execIn(s.dir, "check", "--wait", "30s").CombinedOutput()
		if err != nil {
			t.Fatalf("check after killing %s (back in %v): %v\n%s", svc, took.Round(time.Millisecond), err, out)
		}
		t.Logf("killed %s: back in %v, check passed %v later", svc, took.Round(time.Millisecond), time.Since(begun).Round(time.Millisecond))
	}
	select {
	case err := <-loaded:
		if err != nil {
			t.Fatalf("load: %v\n%s\n%s", err, loadOut.String(), loadErr.String())
		}
	case <-time.After(120 * time.Second):
		t.Fatal("load did not finish")
	}
	t.Logf("load:\n%s", loadOut.String())
	if !strings.Contains(loadOut.String(), "CONFIRMED") {
		t.Error("no order confirmed under load")
	}
	out, err := execIn(s.dir, "check", "--wait", "30s").CombinedOutput()
	if err != nil {
		t.Fatalf("check after the load: %v\n%s", err, out)
	}
	t.Logf("check:\n%s", out)
}
