package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/problem"
)

// DeadLetterRoutes are the administrators' routes over the bus's dead letters:
//
//	GET  {prefix}/dead-letters?group=G&limit=N   list, oldest first
//	GET  {prefix}/dead-letters/{id}               one, with its event and failures
//	POST {prefix}/dead-letters/{id}/replay        publish its event again
//
// They require the admin role.
func DeadLetterRoutes(prefix string, dl bus.DeadLetters, pw problem.Writer) []Route {
	list := func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				pw.Write(w, r, problem.InvalidField("limit", "want 1 to 500, got %q", s))
				return
			}
			limit = n
		}
		letters, err := dl.List(r.Context(), r.URL.Query().Get("group"), limit)
		if err != nil {
			pw.Write(w, r, err)
			return
		}
		if letters == nil {
			letters = []bus.DeadLetter{}
		}
		WriteJSON(w, http.StatusOK, map[string]any{"dead_letters": letters})
	}
	get := func(w http.ResponseWriter, r *http.Request) {
		letter, err := dl.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			pw.Write(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, letter)
	}
	replay := func(w http.ResponseWriter, r *http.Request) {
		if err := dl.Replay(r.Context(), r.PathValue("id")); err != nil {
			pw.Write(w, r, err)
			return
		}
		WriteJSON(w, http.StatusAccepted, map[string]any{"id": r.PathValue("id"), "replayed_at": time.Now().UTC()})
	}
	return []Route{
		{Pattern: "GET " + prefix + "/dead-letters", Auth: AuthAdmin, Handler: http.HandlerFunc(list)},
		{Pattern: "GET " + prefix + "/dead-letters/{id}", Auth: AuthAdmin, Handler: http.HandlerFunc(get)},
		{Pattern: "POST " + prefix + "/dead-letters/{id}/replay", Auth: AuthAdmin, Handler: http.HandlerFunc(replay)},
	}
}
