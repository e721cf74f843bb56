package contract

import (
	"io/fs"
	"net/http"
	"testing"
)

// Client returns an HTTP client whose every exchange is checked against the contract
// name in fsys; when t ends, each violation fails t, and so does any declared
// operation the test never called when requireAll is set.
func Client(t testing.TB, fsys fs.FS, name string, requireAll bool) *http.Client {
	t.Helper()
	doc, err := Load(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range c.Errors() {
			t.Errorf("contract %s: %s", name, e)
		}
		if requireAll {
			seen := c.Operations()
			for _, op := range Declared(doc) {
				if seen[op] == 0 {
					t.Errorf("contract %s: %s is declared but the suite never called it", name, op)
				}
			}
		}
	})
	return &http.Client{Transport: c}
}
