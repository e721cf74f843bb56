package event_test

import (
	"bytes"
	"testing"

	"github.com/switchyard/switchyard/event"
)

// Decode, fed anything, never panics; what it accepts encodes to an event that
// decodes to the same encoding — so what one service reads is what it passes on.
func FuzzEnvelopeRoundTrips(f *testing.F) {
	for _, seed := range []string{
		`{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"inventory.stock.changed.v1","source":"/x","subject":"p","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{"product_id":"p","available":1}}`,
		`{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00.123456789+02:00","datacontenttype":"application/json","data":[1,2,{"k":"\u00e9"}],"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","correlationid":"r-1"}`,
		`{"specversion":"1.0","type":"a.b.c.v1","type":"a.b.d.v1"}`,
		`{"data":{"n":1,"n":2}}`, `{}`, `null`, `[]`, `{"specversion":`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := event.Decode(raw)
		if err != nil {
			return
		}
		once, err := event.Encode(&e)
		if err != nil {
			t.Fatalf("%q decoded but does not encode: %v", raw, err)
		}
		again, err := event.Decode(once)
		if err != nil {
			t.Fatalf("%q decoded, its encoding %q does not: %v", raw, once, err)
		}
		twice, err := event.Encode(&again)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("not stable: %q then %q (%v)", once, twice, err)
		}
	})
}
