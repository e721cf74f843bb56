package traffic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/internal/traffic"
)

func TestTheMixIsSentAtTheRateAndSummarised(t *testing.T) {
	var posts, gets, bad atomic.Int64
	var lastBody atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/rides", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		lastBody.Store(body)
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		posts.Add(1)
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /v1/rides/{id}", func(w http.ResponseWriter, r *http.Request) {
		if len(r.PathValue("id")) != 36 {
			bad.Add(1)
		}
		gets.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /v1/feed", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.CloseNow() }()
		for i := range 2 {
			_ = c.Write(r.Context(), websocket.MessageText, []byte{byte('0' + i)})
		}
		_, _, _ = c.Read(r.Context()) // until the client closes
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var progress bytes.Buffer
	sum, err := traffic.Run(context.Background(), traffic.Config{
		Target: srv.URL, Rate: 200, Duration: 1500 * time.Millisecond, Seed: 7, Progress: &progress, ProgressEvery: time.Second,
		Header: http.Header{"Authorization": {"Bearer t"}},
		Mix: []traffic.Request{
			{Name: "POST /v1/rides", Method: "POST", Path: "/v1/rides", Body: map[string]any{"ride": "{{id}}", "zone": "north"}, Weight: 3},
			{Name: "GET /v1/rides/{id}", Method: "GET", Path: "/v1/rides/{id}", Weight: 1},
			{Name: "WS /v1/feed", Method: "GET", Path: "/v1/feed", Stream: true, Messages: 2, Weight: 1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scheduled != 300 || sum.Sent+sum.NotSent != sum.Scheduled {
		t.Errorf("scheduled %d, sent %d, not sent %d; want 300 at 200/s over 1.5s", sum.Scheduled, sum.Sent, sum.NotSent)
	}
	post, get, feed := sum.ByRequest["POST /v1/rides"], sum.ByRequest["GET /v1/rides/{id}"], sum.ByRequest["WS /v1/feed"]
	if int64(post.OK) != posts.Load() || int64(get.Sent) != gets.Load() || get.Failed != get.Sent || feed.OK != feed.Sent {
		t.Errorf("counts: post %+v (server %d), get %+v (server %d), feed %+v", post, posts.Load(), get, gets.Load(), feed)
	}
	if post.Sent < 2*get.Sent || feed.Sent == 0 {
		t.Errorf("weights 3:1:1 drew %d, %d, %d", post.Sent, get.Sent, feed.Sent)
	}
	if bad.Load() > 0 {
		t.Errorf("%d paths had no id filled in", bad.Load())
	}
	if body := lastBody.Load().(map[string]any); len(body["ride"].(string)) != 36 || body["zone"] != "north" {
		t.Errorf("the body template: %v", body)
	}
	var out bytes.Buffer
	sum.Write(&out)
	for _, want := range []string{"requests scheduled 300", "GET /v1/rides/{id}", "503 ", "WS /v1/feed", "101 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(progress.String(), " ok ") {
		t.Errorf("no progress line: %q", progress.String())
	}
}

// The progress line rewrites itself (\r) only on a terminal; elsewhere each is a
// line of its own.
func TestTheProgressLineIsRewrittenOnlyOnATerminal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	for _, terminal := range []bool{false, true} {
		var progress bytes.Buffer
		_, err := traffic.Run(context.Background(), traffic.Config{
			Target: srv.URL, Rate: 50, Duration: 700 * time.Millisecond, Seed: 1,
			Progress: &progress, InPlace: terminal, ProgressEvery: 100 * time.Millisecond,
			Mix: []traffic.Request{{Name: "GET /", Method: "GET", Path: "/", Weight: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		out := progress.String()
		lines := strings.Count(out, " ok ")
		switch {
		case lines < 3:
			t.Errorf("terminal %v: %d progress lines in 700ms at one per 100ms:\n%q", terminal, lines, out)
		case !terminal && (strings.Contains(out, "\r") || strings.Count(out, "\n") != lines):
			t.Errorf("not a terminal, yet the progress is not one line each:\n%q", out)
		case terminal && (strings.Count(out, "\r") != lines || strings.Count(out, "\n") != 1):
			t.Errorf("a terminal, yet the progress line is not rewritten in place:\n%q", out)
		}
	}
}
