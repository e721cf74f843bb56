package rest_test

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
)

type order struct {
	Items []struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	} `json:"items"`
	Note *string `json:"note"`
}

// Decode, fed any body, never panics, and every refusal is a problem a handler can
// write as it is — 400, 413 or 415, never a bare error.
func FuzzDecodeRefusesWithAProblem(f *testing.F) {
	for _, seed := range []string{
		`{"items":[{"sku":"a","quantity":1}]}`, `{"items":[],"items":[{"sku":"a"}]}`, `{"items":[{"sku":"a","sku":"b"}]}`,
		`{"note":null}`, `{"Items":[]}`, `{"items":[{"quantity":1e400}]}`, `{} {}`, `{"x":1}`, "\xff", `[`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var v order
		err := rest.Decode(httptest.NewRecorder(), r, &v, 4096)
		if err == nil {
			return
		}
		var p *problem.Error
		if !errors.As(err, &p) {
			t.Fatalf("%q: a refusal that is not a problem: %v", body, err)
		}
		if k := problem.KindOf(err); k != problem.Invalid && k != problem.TooLarge {
			t.Fatalf("%q: refused as %v", body, k)
		}
	})
}
