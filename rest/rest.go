// Package rest is the JSON-over-HTTP edge shared by every service: strict request
// decoding with a size limit, JSON responses, and cursor pagination.
//
// Decoding failures come back as *problem.Error values (Invalid, TooLarge or
// Unsupported) whose details name the offending field or byte offset, so a handler
// can pass them straight to problem.Writer.
package rest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/internal/strictjson"
	"github.com/switchyard/switchyard/problem"
)

// DefaultMaxBody is the body limit when a handler does not choose one: 1 MiB.
const DefaultMaxBody = 1 << 20

// Decode reads exactly one JSON value from r's body into v. It rejects bodies over
// maxBytes (413), media types other than JSON (415), unknown fields, trailing data,
// a key named twice in one object, and malformed or mistyped JSON (400), each with
// a detail naming what is wrong.
// maxBytes <= 0 means DefaultMaxBody.
func Decode(w http.ResponseWriter, r *http.Request, v any, maxBytes int64) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return problem.New(problem.Unsupported, "send the body as application/json, not %q", ct)
		}
	}
	if r.ContentLength > maxBytes {
		return tooLarge(maxBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(maxBytes)
		}
		return problem.Wrap(problem.Invalid, err, "the body could not be read")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, maxBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return problem.New(problem.Invalid, "the body holds more than one JSON value")
	}
	return CheckDuplicateKeys(body)
}

// CheckDuplicateKeys refuses a JSON document in which an object names a key twice —
// which encoding/json would read as its last value and another layer as its first —
// with a 400 problem naming the key's path ("items.1.sku"). Decode applies it to
// every body; call it on JSON read any other way.
func CheckDuplicateKeys(doc []byte) error {
	var dup *strictjson.DuplicateKeyError
	if err := strictjson.Check(doc); errors.As(err, &dup) {
		return problem.InvalidField(dup.Path, "named twice in one object; send it once")
	}
	return nil
}

func tooLarge(limit int64) error {
	return problem.New(problem.TooLarge, "the body is larger than %d bytes", limit)
}

func decodeError(err error, limit int64) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		mbe    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return tooLarge(limit)
	case errors.Is(err, io.EOF):
		return problem.New(problem.Invalid, "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(problem.Invalid, "the body ends in the middle of a JSON value")
	case errors.As(err, &syntax):
		return problem.New(problem.Invalid, "malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem.New(problem.Invalid, "the body must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
		}
		return problem.InvalidField(field, "want %s, got %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return problem.InvalidField(name, "unknown field")
	default:
		return problem.Wrap(problem.Invalid, err, "the body is not valid JSON")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return "a number"
	}
}

// Write writes v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	buf, ok := encode(w, v)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// WriteCacheable writes a 200 JSON answer (body, already encoded) that caches may
// keep as cacheControl says, with a strong ETag of its bytes; a request whose
// If-None-Match holds that ETag is answered 304 without the body.
func WriteCacheable(w http.ResponseWriter, r *http.Request, body []byte, cacheControl string) {
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", cacheControl)
	for tag := range strings.SplitSeq(r.Header.Get("If-None-Match"), ",") {
		if t := strings.TrimPrefix(strings.TrimSpace(tag), "W/"); t == etag || t == "*" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// WriteCacheableValue is WriteCacheable for a value to encode.
func WriteCacheableValue(w http.ResponseWriter, r *http.Request, v any, cacheControl string) {
	if buf, ok := encode(w, v); ok {
		WriteCacheable(w, r, buf.Bytes(), cacheControl)
	}
}

func encode(w http.ResponseWriter, v any) (*bytes.Buffer, bool) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// A value we built ourselves failed to encode: a programming error.
		problem.WriteDetails(w, problem.From(fmt.Errorf("encode response: %w", err)))
		return nil, false
	}
	return &buf, true
}

// NewRequest makes a request carrying body as JSON (none when body is nil), with
// GetBody set so that a retry (the rpc stack's) can send it again.
func NewRequest(ctx context.Context, method, url string, body any) (*http.Request, error) {
	if body == nil {
		return http.NewRequestWithContext(ctx, method, url, nil)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// Page is a page of a list response.
type Page[T any] struct {
	Items []T `json:"items"`
	// NextCursor fetches the following page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// PageParams are the parsed limit and cursor of a list request.
type PageParams struct {
	// Limit is the page size, 1 to the maximum.
	Limit int
	// After is the decoded cursor: the sort key of the last item already seen, or "".
	After string
}

// ParsePage reads ?limit= and ?cursor= from r. limit defaults to def and must be
// between 1 and max; cursor must be one this package issued.
func ParsePage(r *http.Request, def, max int) (PageParams, error) {
	p := PageParams{Limit: def}
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			return p, problem.InvalidField("limit", "want a whole number from 1 to %d, got %q", max, truncate(s, 20))
		}
		p.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		after, err := DecodeCursor(c)
		if err != nil {
			return p, problem.InvalidField("cursor", "not a cursor this API issued; start again without it")
		}
		p.After = after
	}
	return p, nil
}

const cursorPrefix = "c1:"

// EncodeCursor makes an opaque cursor from the sort key of the last item of a page.
func EncodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + key))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (string, error) {
	if len(c) > 512 {
		return "", errors.New("cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !bytes.HasPrefix(b, []byte(cursorPrefix)) {
		return "", errors.New("malformed cursor")
	}
	return string(b[len(cursorPrefix):]), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
