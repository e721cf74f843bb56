package rest_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
)

type signup struct {
	Email    string `json:"email"`
	Age      int    `json:"age"`
	Nickname string `json:"nickname"`
}

func TestDecodeRejectsBadBodiesWithAClearReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		body        string
		contentType string
		limit       int64
		kind        problem.Kind
		detail      string
	}{
		{"malformed JSON", `{"email": "a@b.c",}`, "application/json", 0, problem.Invalid, "malformed JSON at byte 19"},
		{"unknown field", `{"email": "a@b.c", "admin": true}`, "application/json", 0, problem.Invalid, "admin: unknown field"},
		{"wrong type", `{"age": "ten"}`, "application/json", 0, problem.Invalid, "age: want a number, got string"},
		{"not an object", `[1,2]`, "application/json", 0, problem.Invalid, "the body must be an object, not array"},
		{"two values", `{} {}`, "application/json", 0, problem.Invalid, "more than one JSON value"},
		{"empty body", ``, "application/json", 0, problem.Invalid, "the body is empty"},
		{"truncated", `{"email": "a@`, "application/json", 0, problem.Invalid, "ends in the middle"},
		{"over the limit", `{"nickname": "` + strings.Repeat("x", 200) + `"}`, "application/json", 64, problem.TooLarge, "larger than 64 bytes"},
		{"a key twice", `{"email": "a@b.c", "email": "admin@shop"}`, "application/json", 0, problem.Invalid, "email: named twice in one object"},
		{"a key twice, escaped once", `{"nickname": "x", "nick\u006eame": "y"}`, "application/json", 0, problem.Invalid, "nickname: named twice"},
		{"not JSON at all", `email=a@b.c`, "application/x-www-form-urlencoded", 0, problem.Unsupported, "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.contentType)
			var v signup
			err := rest.Decode(httptest.NewRecorder(), r, &v, tc.limit)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if problem.KindOf(err) != tc.kind {
				t.Errorf("kind = %v, want %v (%v)", problem.KindOf(err), tc.kind, err)
			}
			if !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("error %q does not mention %q", err, tc.detail)
			}
		})
	}
}

func TestDecodeAcceptsAGoodBody(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"email":"a@b.c","age":3}`))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	var v signup
	if err := rest.Decode(httptest.NewRecorder(), r, &v, 0); err != nil {
		t.Fatal(err)
	}
	if v.Email != "a@b.c" || v.Age != 3 {
		t.Errorf("decoded %+v", v)
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	cursor := rest.EncodeCursor("prod-0042")
	r := httptest.NewRequest("GET", "/v1/products?limit=5&cursor="+cursor, nil)
	p, err := rest.ParsePage(r, 20, 100)
	if err != nil || p.Limit != 5 || p.After != "prod-0042" {
		t.Fatalf("ParsePage = %+v, %v", p, err)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=ten", "cursor=not-ours", "cursor=" + strings.Repeat("A", 600)} {
		_, err := rest.ParsePage(httptest.NewRequest("GET", "/?"+q, nil), 20, 100)
		if problem.KindOf(err) != problem.Invalid {
			t.Errorf("%s: got %v, want an Invalid error", q, err)
		}
	}
}
