package contract_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/switchyard/switchyard/testkit/contract"
)

const doc = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /things/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, required: [id], properties: {id: {type: string}}}
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, additionalProperties: false, required: [name], properties: {name: {type: string}}}
      responses:
        "201": {description: created}
        "400": {description: bad}
`

func checker(t *testing.T, h http.HandlerFunc) (*contract.Checker, *http.Client, string) {
	t.Helper()
	d, err := contract.Load(fstest.MapFS{"t.yaml": {Data: []byte(doc)}}, "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := contract.NewChecker(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return c, &http.Client{Transport: c}, srv.URL
}

func TestConformingExchangesPass(t *testing.T) {
	c, client, base := checker(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			body, _ := io.ReadAll(r.Body)
			if !strings.Contains(string(body), `"name"`) {
				w.WriteHeader(400)
				return
			}
			w.WriteHeader(201)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"1"}`)
	})
	client.Get(base + "/things/1")
	client.Post(base+"/things", "application/json", strings.NewReader(`{"name":"x"}`))
	client.Post(base+"/things", "application/json", strings.NewReader(`{"oops":1}`)) // rejected on purpose: fine
	if errs := c.Errors(); len(errs) != 0 {
		t.Errorf("violations: %v", errs)
	}
	if ops := c.Operations(); ops["GET /things/{id}"] != 1 || ops["POST /things"] != 2 {
		t.Errorf("operations = %v", ops)
	}
}

func TestViolationsAreCaught(t *testing.T) {
	for name, tc := range map[string]struct {
		handler http.HandlerFunc
		do      func(*http.Client, string)
		want    string
	}{
		"body off schema": {
			func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"id":42}`)
			},
			func(c *http.Client, b string) { c.Get(b + "/things/1") },
			"response outside the contract",
		},
		"undeclared status": {
			func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(418) },
			func(c *http.Client, b string) { c.Get(b + "/things/1") },
			"response outside the contract",
		},
		"undeclared route": {
			func(w http.ResponseWriter, _ *http.Request) {},
			func(c *http.Client, b string) { c.Get(b + "/other") },
			"no operation in the contract",
		},
		"accepted a forbidden request": {
			func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) },
			func(c *http.Client, b string) {
				c.Post(b+"/things", "application/json", strings.NewReader(`{"name":"x","admin":true}`))
			},
			"accepted (201) a request outside the contract",
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, client, base := checker(t, tc.handler)
			tc.do(client, base)
			errs := c.Errors()
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("violations = %v, want one mentioning %q", errs, tc.want)
			}
		})
	}
}
