package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The shop's product reads under `up` are cached by the gateway with ETags, and a
// stock change drops the product's entry: the next read shows the new level. The
// route keeps answers ten minutes here (overriding catalog's five seconds), so a
// new level showing is the event's doing, never an entry expiring.
func TestTheGatewayCachesProductReadsUntilTheStockChanges(t *testing.T) {
	platform := strings.Replace(fullPlatform, "      cache:\n", "      cache:\n        max_age: 10m\n        override: true\n", 1)
	if platform == fullPlatform {
		t.Fatal("the built-in platform has no cached route to lengthen")
	}
	s := startUp(t, platform)
	gw, _ := s.service("gateway")
	const product = "prod-kbd-002"
	read := func(header map[string]string) (status int, cacheStatus, etag string, available float64) {
		t.Helper()
		req, _ := http.NewRequest("GET", gw+"/api/v1/products/"+product, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			var p map[string]any
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			available, _ = p["available"].(float64)
		}
		return resp.StatusCode, resp.Header.Get("Cache-Status"), resp.Header.Get("ETag"), available
	}

	// The catalog announces availability once inventory's first event has reached
	// it; wait for that answer, then start from a read the gateway has not seen.
	deadline := time.Now().Add(15 * time.Second)
	var before float64
	for {
		_, _, _, before = read(map[string]string{"Cache-Control": "no-store"})
		if before > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if before <= 0 {
		t.Fatal("the catalog never showed the product's availability")
	}

	token := s.customer("cache@example.com")
	status, cache, etag, _ := read(nil)
	if status != 200 || etag == "" || !strings.Contains(cache, "stored") {
		// Another read may have stored it first; it must then be a hit.
		if !strings.Contains(cache, "hit") {
			t.Fatalf("first read: %d %q %q", status, cache, etag)
		}
	}
	if status, cache, again, _ := read(nil); status != 200 || !strings.Contains(cache, "hit") || again != etag {
		t.Fatalf("second read: %d %q %q, want a hit with ETag %s", status, cache, again, etag)
	}
	if status, cache, _, _ := read(map[string]string{"If-None-Match": etag}); status != http.StatusNotModified || !strings.Contains(cache, "hit") {
		t.Fatalf("a conditional read: %d %q, want 304 from the cache", status, cache)
	}

	order, _ := s.place(token, "cache-1", `{"items":[{"product_id":"`+product+`","quantity":1}],"payment":{"card_number":"4242424242424242"}}`)
	if order["status"] != "CONFIRMED" {
		t.Fatalf("the order: %v", order)
	}
	// The stock change must show: the event dropped the entry. Reads go on until
	// the catalog's answer has it.
	deadline = time.Now().Add(20 * time.Second)
	for {
		status, cache, now, available := read(nil)
		if status == 200 && available == before-1 {
			if now == etag {
				t.Errorf("a new answer under the old ETag %s", etag)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20s after the order the gateway still answers %v available (%q), not %v", available, cache, before-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, _, _, _ := read(map[string]string{"If-None-Match": etag}); status != 200 {
		t.Errorf("the old ETag after the change: %d, want the new answer", status)
	}
}
