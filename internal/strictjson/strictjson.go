// Package strictjson finds what encoding/json lets through but a strict reader must
// refuse: an object that names the same key twice. encoding/json keeps the last
// value, other parsers keep the first or fail, so `{"items": [], "items": [...]}`
// means different things to different layers — a parser differential a client can
// use to show one layer an order and another a different one. Every JSON edge
// (rest.Decode, the gateway's body rules) and every event (event.Unmarshal, the
// validations before publishing) refuses such a document.
//
// Our own because neither encoding/json nor the libraries we use report duplicate
// names (encoding/json/v2 does, behind GOEXPERIMENT=jsonv2 only); the scan is
// one pass over the bytes without allocating for ordinary documents.
package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"
)

// DuplicateKeyError says which key an object names twice and where that object is.
type DuplicateKeyError struct {
	// Key is the repeated name, unescaped.
	Key string
	// Path locates the repeated member from the document's root, dotted, with array
	// indexes as numbers: "items.1.sku". For a key at the root it is the key itself.
	Path string
}

func (e *DuplicateKeyError) Error() string {
	if e.Path == e.Key {
		return fmt.Sprintf("duplicate key %q", e.Key)
	}
	return fmt.Sprintf("duplicate key %q at %s", e.Key, e.Path)
}

// ErrMalformed is Check's answer for bytes whose structure is not one JSON
// document. Check does not validate numbers, literals or escapes outside keys: run
// it on what a decoder has accepted, which also gives the precise syntax error.
var ErrMalformed = errors.New("strictjson: not a JSON document")

// maxDepth bounds nesting as encoding/json does, so no input can exhaust the stack.
const maxDepth = 10000

// Check returns a *DuplicateKeyError for the first object in b that names a key
// twice, nil when none does, and ErrMalformed when the structure of b is not one
// JSON value (whitespace around it allowed). It never panics, whatever b holds. Keys are compared after unescaping, so "a" and
// "\u0061" are the same key, as every decoder reads them.
func Check(b []byte) error {
	s := scanner{b: b}
	s.space()
	if err := s.value(0); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.b) {
		return ErrMalformed
	}
	return nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return ErrMalformed
	}
	switch s.b[s.i] {
	case '{':
		if depth >= maxDepth {
			return ErrMalformed
		}
		return s.object(depth + 1)
	case '[':
		if depth >= maxDepth {
			return ErrMalformed
		}
		return s.array(depth + 1)
	case '"':
		_, _, err := s.str()
		return err
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				if s.i == start {
					return ErrMalformed
				}
				return nil
			case '{', '[', '"', ':':
				return ErrMalformed
			}
			s.i++
		}
		if s.i == start {
			return ErrMalformed
		}
		return nil
	}
}

// str scans a string at s.i and returns its raw contents (between the quotes) and
// whether it holds escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	s.i++ // the opening quote
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, nil
		}
		s.i++
	}
	return nil, false, ErrMalformed
}

// inline is how many keys an object may have before Check keeps them in a map.
const inline = 16

func (s *scanner) object(depth int) error {
	s.i++ // {
	var (
		few  [inline]string
		n    int
		many map[string]struct{}
	)
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return ErrMalformed
		}
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		key := unsafeString(raw)
		if escaped {
			if key, err = unescape(raw); err != nil {
				return err
			}
		}
		seen := false
		if many != nil {
			_, seen = many[key]
			many[key] = struct{}{}
		} else {
			for _, k := range few[:n] {
				if k == key {
					seen = true
					break
				}
			}
			if !seen {
				if n < inline {
					few[n] = key
					n++
				} else {
					many = make(map[string]struct{}, 2*inline)
					for _, k := range few {
						many[k] = struct{}{}
					}
					many[key] = struct{}{}
				}
			}
		}
		if seen {
			key = strings.Clone(key)
			return &DuplicateKeyError{Key: key, Path: key}
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return ErrMalformed
		}
		s.i++
		s.space()
		if err := s.value(depth); err != nil {
			return within(err, key)
		}
		s.space()
		if s.i >= len(s.b) {
			return ErrMalformed
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return ErrMalformed
		}
	}
}

func (s *scanner) array(depth int) error {
	s.i++ // [
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for index := 0; ; index++ {
		s.space()
		if err := s.value(depth); err != nil {
			return within(err, strconv.Itoa(index))
		}
		s.space()
		if s.i >= len(s.b) {
			return ErrMalformed
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return ErrMalformed
		}
	}
}

// within prefixes a duplicate's path with the step to the value it was found in, as
// the error unwinds — so the scan keeps no path of its own.
func within(err error, step string) error {
	var dup *DuplicateKeyError
	if errors.As(err, &dup) {
		dup.Path = step + "." + dup.Path // a new string: step may view the input
	}
	return err
}

// unescape reads a key holding escapes the way every decoder does.
func unescape(raw []byte) (string, error) {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var k string
	if err := json.Unmarshal(quoted, &k); err != nil {
		return "", ErrMalformed
	}
	return k, nil
}

// unsafeString views raw as a string without copying: the keys of one scan are
// compared while b is neither changed nor kept, and an error copies what it names.
func unsafeString(raw []byte) string { return unsafe.String(unsafe.SliceData(raw), len(raw)) }
