package users

import (
	"database/sql"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

// The provider's own pages: sign-in, then — for a client that is not the shop's
// own — consent. They are plain forms, with no script, that no other site may
// frame.

var pages = template.Must(template.New("pages").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} · Switchyard Shop</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}
label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;box-sizing:border-box;font:inherit}
button{margin-top:1rem;padding:.5rem 1rem;font:inherit}.error{color:#b00020}ul{padding-left:1.2rem}</style></head><body>{{end}}
{{define "login"}}{{template "head" .}}
<h1>Sign in</h1><p>to continue to <strong>{{.Client}}</strong></p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required value="{{.Email}}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>{{end}}
{{define "consent"}}{{template "head" .}}
<h1>Allow {{.Client}}?</h1><p><strong>{{.Client}}</strong> asks to:</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<form method="post" action="{{.Action}}"><input type="hidden" name="authRequestID" value="{{.ID}}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></form></body></html>{{end}}
{{define "gone"}}{{template "head" .}}
<h1>This sign-in has expired</h1><p>Go back to the application and sign in again.</p></body></html>{{end}}
`))

// scopeWords say what a scope lets a client do, on the consent page.
var scopeWords = map[string]string{
	oidc.ScopeOpenID:        "know who you are",
	oidc.ScopeProfile:       "see your name",
	oidc.ScopeEmail:         "see your email address",
	oidc.ScopeOfflineAccess: "stay signed in when you are away",
}

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

type pageData struct {
	Title, Client, Action, ID, Email, Error string
	Scopes                                  []string
}

func (s *Service) render(w http.ResponseWriter, status int, page string, d pageData) {
	pageHeaders(w)
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, page, d); err != nil {
		s.log.Error("render page", "page", page, "error", err)
	}
}

// pending loads the authorization request a page is for, and its client.
func (s *Service) pending(r *http.Request, p *provider, id string) (*authRequest, *Client, bool) {
	if id == "" || len(id) > 64 {
		return nil, nil, false
	}
	a, exchanged, err := p.st.loadAuthRequest(r.Context(), "id = $1", id)
	if err != nil || exchanged || a.done {
		return nil, nil, false
	}
	c, err := p.st.clients.byID(r.Context(), a.ClientID)
	if err != nil {
		return nil, nil, false
	}
	return a, c, true
}

func (s *Service) loginPage(p *provider) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		a, c, ok := s.pending(r, p, id)
		if !ok {
			s.render(w, http.StatusBadRequest, "gone", pageData{Title: "Expired"})
			return
		}
		s.render(w, http.StatusOK, "login", pageData{Title: "Sign in", Client: c.Name, Action: p.mount + "/login", ID: id, Email: a.LoginHint})
	}
}

// form parses a page's form, bounded.
func (s *Service) form(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.problems.Write(w, r, problem.New(problem.Invalid, "the form could not be read"))
		return false
	}
	return true
}

func (s *Service) loginSubmit(p *provider) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.form(w, r) {
			return
		}
		id := r.PostForm.Get("authRequestID")
		a, c, ok := s.pending(r, p, id)
		if !ok {
			s.render(w, http.StatusBadRequest, "gone", pageData{Title: "Expired"})
			return
		}
		email := r.PostForm.Get("email")
		u, err := s.authenticate(r.Context(), email, r.PostForm.Get("password"))
		if err != nil {
			status, msg := http.StatusUnauthorized, "Wrong email or password."
			if !errors.Is(err, errBadLogin) {
				status, msg = problem.From(err).Status, "Signing in is not possible just now; try again in a moment."
			}
			s.render(w, status, "login", pageData{Title: "Sign in", Client: c.Name, Action: p.mount + "/login", ID: id, Email: email, Error: msg})
			return
		}
		s.logins.WithLabelValues("ok").Inc()
		if err := p.st.signIn(r.Context(), id, u.ID); err != nil {
			s.render(w, http.StatusBadRequest, "gone", pageData{Title: "Expired"})
			return
		}
		asks := askedScopes(a, c)
		if !c.FirstParty {
			granted, err := s.consented(r, u.ID, c.ID)
			if err != nil {
				s.problems.Write(w, r, err)
				return
			}
			if missing := slices.DeleteFunc(slices.Clone(asks), func(sc string) bool { return slices.Contains(granted, sc) }); len(missing) > 0 {
				s.render(w, http.StatusOK, "consent", pageData{Title: "Allow access", Client: c.Name, Action: p.mount + "/consent", ID: id, Scopes: describe(asks)})
				return
			}
		}
		s.approve(w, r, p, id)
	}
}

func (s *Service) consentSubmit(p *provider) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.form(w, r) {
			return
		}
		id := r.PostForm.Get("authRequestID")
		a, c, ok := s.pending(r, p, id)
		if !ok || a.userID == "" {
			s.render(w, http.StatusBadRequest, "gone", pageData{Title: "Expired"})
			return
		}
		if r.PostForm.Get("decision") != "allow" {
			op.AuthRequestError(w, r, a, oidc.ErrAccessDenied().WithDescription("the user did not allow it"), p.op)
			return
		}
		_, err := s.db.ExecContext(r.Context(),
			`INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
			 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at`,
			a.userID, c.ID, strings.Join(askedScopes(a, c), " "), store.Millis(s.cfg.Now()))
		if err != nil {
			s.problems.Write(w, r, err)
			return
		}
		s.approve(w, r, p, id)
	}
}

func (s *Service) approve(w http.ResponseWriter, r *http.Request, p *provider, id string) {
	if err := p.st.approve(r.Context(), id); err != nil {
		s.render(w, http.StatusBadRequest, "gone", pageData{Title: "Expired"})
		return
	}
	http.Redirect(w, r, p.callback(id), http.StatusFound)
}

// askedScopes are the scopes of a the client may have.
func askedScopes(a *authRequest, c *Client) []string {
	var out []string
	for _, sc := range a.Scopes {
		if slices.Contains(standardScopes, sc) || c.IsScopeAllowed(sc) {
			out = append(out, sc)
		}
	}
	return out
}

func describe(scopes []string) []string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		if w, ok := scopeWords[sc]; ok {
			out[i] = w
		} else {
			out[i] = "use your account for " + sc
		}
	}
	return out
}

func (s *Service) consented(r *http.Request, userID, clientID string) ([]string, error) {
	var scopes string
	err := s.db.QueryRowContext(r.Context(), `SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2`, userID, clientID).Scan(&scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return strings.Fields(scopes), err
}
