package strictjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/strictjson"
)

func TestCheckFindsTheRepeatedKeyAndWhereItIs(t *testing.T) {
	for _, c := range []struct {
		in, key, path string
	}{
		{`{"items": [], "items": [{"sku": "a"}]}`, "items", "items"},
		{`{"a":1,"b":2,"a":3}`, "a", "a"},
		{`{"order":{"items":[{"sku":"x","qty":1},{"sku":"y","sku":"z"}]}}`, "sku", "order.items.1.sku"},
		{`[{"ok":1},{"x":1,"x":2}]`, "x", "1.x"},
		{`{"\u0061": 1, "a": 2}`, "a", "a"},          // the same key, escaped once
		{`{"a\"b": 1, "a\u0022b": 2}`, `a"b`, `a"b`}, // an escaped quote either way
		{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":3}`, "k3", "k3"}, // past the inline keys, into the map
		{` {"inner": {"deep": {"x": true, "x": false}}} `, "x", "inner.deep.x"},
	} {
		err := strictjson.Check([]byte(c.in))
		var dup *strictjson.DuplicateKeyError
		if !errors.As(err, &dup) {
			t.Errorf("%s: got %v, want a duplicate %q", c.in, err, c.key)
			continue
		}
		if dup.Key != c.key || dup.Path != c.path {
			t.Errorf("%s: got key %q at %q, want %q at %q", c.in, dup.Key, dup.Path, c.key, c.path)
		}
	}
}

func TestCheckPassesDocumentsWithoutRepeats(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `"x"`, `12.5e3`, `null`, `true`,
		`{"a":1,"A":2}`, // case differs: two keys to JSON (encoding/json's case-insensitive matching is rest.Decode's concern)
		`{"a":{"a":{"a":1}}}`,
		`[{"a":1},{"a":2}]`,
		`{"s":"with \"quotes\" and , : { [ inside","t":"\\"}`,
		`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17}`,
	} {
		if err := strictjson.Check([]byte(in)); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func TestCheckRefusesWhatIsNotOneDocument(t *testing.T) {
	for _, in := range []string{``, ` `, `{`, `{"a"`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{} {}`, `{"a":1]`, `"open`, `{a:1}`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		if err := strictjson.Check([]byte(in)); !errors.Is(err, strictjson.ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
}

// reference finds the first repeated key with encoding/json's tokenizer, a reader
// independent of Check's scan: the fuzz target holds the two to the same answer.
func reference(b []byte) (key string, found bool) {
	type level struct {
		keys map[string]bool // nil for an array
		key  bool            // in an object, the next token is a key
	}
	var stack []*level
	ended := func() { // a value ended: in an object, a key comes next
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].key = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if n := len(stack); n > 0 && stack[n-1].key {
			if k, ok := tok.(string); ok {
				if stack[n-1].keys[k] {
					return k, true
				}
				stack[n-1].keys[k] = true
				stack[n-1].key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{keys: map[string]bool{}, key: true})
		case json.Delim('['):
			stack = append(stack, &level{})
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
			ended()
		default:
			ended()
		}
	}
}

func FuzzCheckAgreesWithTheTokenizer(f *testing.F) {
	for _, seed := range []string{
		`{"items": [], "items": [1]}`, `{"a":{"b":1,"b":2},"a":3}`, `[{"x":1},{"x":2}]`, `{"\u0061":1,"a":2}`,
		`{"a":"\\","b":"\"","c":[true,false,null,1.5e-3]}`, `{}`, `[[[]]]`, `{"a":1`, `{"k":{"k":{"k":1}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := strictjson.Check(b) // never panics, whatever b is
		if !json.Valid(b) {
			return
		}
		key, found := reference(b)
		var dup *strictjson.DuplicateKeyError
		switch {
		case found && !errors.As(err, &dup):
			t.Fatalf("%q: the tokenizer finds %q twice, Check says %v", b, key, err)
		case found && dup.Key != key:
			t.Fatalf("%q: the tokenizer finds %q first, Check %q", b, key, dup.Key)
		case !found && err != nil:
			t.Fatalf("%q: no key repeats, Check says %v", b, err)
		}
		if found && !strings.HasSuffix(dup.Path, key) {
			t.Fatalf("%q: path %q does not end in the key %q", b, dup.Path, key)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"customer":"c-1","currency":"EUR","items":[`)
	for i := range 20 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"sku":"sku-` + strconv.Itoa(i) + `","quantity":2,"unit_price":{"amount":1999,"currency":"EUR"}}`)
	}
	sb.WriteString(`],"shipping":{"name":"A. Person","street":"1 Main St","city":"Springfield","country":"US"}}`)
	doc := []byte(sb.String())
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := strictjson.Check(doc); err != nil {
			b.Fatal(err)
		}
	}
}
