package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/problem"
)

// Part is one piece of an aggregated answer.
type Part struct {
	// Name is the part's key in the answer.
	Name string
	// Timeout bounds the part on its own [the request's deadline].
	Timeout time.Duration
	// Fetch produces the part's value.
	Fetch func(ctx context.Context) (any, error)
}

// Warning says which part of an aggregated answer is missing, and why.
type Warning struct {
	Part   string `json:"part"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// Gather runs parts in parallel and returns what each produced, keyed by name, and a
// warning for each that failed or ran out of time. It waits for every part (each is
// bounded by its timeout).
func Gather(ctx context.Context, parts ...Part) (map[string]any, []Warning) {
	out := make(map[string]any, len(parts))
	var warnings []Warning
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if p.Timeout > 0 {
				pctx, cancel = context.WithTimeout(ctx, p.Timeout)
			}
			defer cancel()
			v, err := p.Fetch(pctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if errors.Is(pctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					err = problem.New(problem.Timeout, "%s did not answer in time", p.Name)
				}
				d := problem.From(err)
				detail := d.Detail
				if detail == "" {
					detail = d.Title
				}
				warnings = append(warnings, Warning{Part: p.Name, Status: d.Status, Detail: detail})
				return
			}
			out[p.Name] = v
		})
	}
	wg.Wait()
	slices.SortFunc(warnings, func(a, b Warning) int { return strings.Compare(a.Part, b.Part) })
	return out, warnings
}

// WriteJSON writes v as a JSON answer.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
