package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/cli"
)

// The toolkit's load --json prints the run as one JSON document, each request's
// figures in it; without a terminal its progress never rewrites a line.
func TestLoadJSONIsOneDocument(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	app := cli.App{Name: "rides", Config: []byte("version: 1\nservices:\n  riders:\n    listen: 127.0.0.1:0\n")}
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), app, []string{"load", "--target", srv.URL, "--request", "GET /ok=3", "--request", "GET /missing",
		"--rate", "40", "--duration", "1s", "--json"}, func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var doc struct {
		Scheduled int `json:"scheduled"`
		OK        int `json:"ok"`
		Refused   int `json:"refused"`
		Requests  []struct {
			Request  string         `json:"request"`
			Sent     int            `json:"sent"`
			Statuses map[string]int `json:"statuses"`
			P99      float64        `json:"p99_ms"`
		} `json:"requests"`
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&doc); err != nil || dec.More() {
		t.Fatalf("not one JSON document (%v):\n%s", err, out.String())
	}
	if doc.Scheduled != 40 || doc.OK+doc.Refused != 40 || doc.Refused == 0 || len(doc.Requests) != 2 {
		t.Errorf("got %+v", doc)
	}
	for _, r := range doc.Requests {
		want := "204"
		if r.Request == "GET /missing" {
			want = "404"
		}
		if r.Sent == 0 || r.Statuses[want] != r.Sent || r.P99 <= 0 {
			t.Errorf("%s: %+v, want every answer %s", r.Request, r, want)
		}
	}
	if strings.Contains(errOut.String(), "\r") {
		t.Errorf("progress rewritten in place into a buffer: %q", errOut.String())
	}
}
