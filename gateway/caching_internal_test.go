package gateway

import (
	"net/http"
	"reflect"
	"testing"
)

func TestEntriesSurviveTheirEncodingAndRefuseATruncatedOne(t *testing.T) {
	e := &entry{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "Vary": {"Accept-Language", "Origin"}, "Empty": {}},
		Stored: 1, FreshUntil: 2, StaleUntil: 3, body: []byte(`{"id":"p-1"}`)}
	raw := e.marshal()
	got, ok := unmarshalEntry(raw)
	if !ok || got.Status != 200 || got.Stored != 1 || got.FreshUntil != 2 || got.StaleUntil != 3 ||
		!reflect.DeepEqual(got.Header, e.Header) || string(got.body) != string(e.body) {
		t.Fatalf("decoded %+v (ok %v)", got, ok)
	}
	// Every prefix that cuts into the header is refused, never misread.
	headerEnd := len(raw) - len(e.body)
	for n := range headerEnd {
		if _, ok := unmarshalEntry(raw[:n]); ok {
			t.Errorf("a prefix of %d of %d header bytes decoded", n, headerEnd)
		}
	}
}
