package events_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/event"
)

var eventType = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.v[1-9][0-9]*$`)

// usedTypes collects every event type named in this module's Go code (string
// literals, tests excluded) and in switchyard.yaml. Modules of their own inside the
// repository (examples/, deploy/) declare their own events and are left out.
func usedTypes(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..")
	used := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "gen") {
			return filepath.SkipDir
		}
		if d.IsDir() && path != root {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "test/") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && eventType.MatchString(s) {
					used[s] = path
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := os.ReadFile(filepath.Join(root, "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, word := range regexp.MustCompile(`[a-z0-9_.]+`).FindAllString(string(yaml), -1) {
		if eventType.MatchString(word) {
			used[word] = "switchyard.yaml"
		}
	}
	return used
}

func TestEveryEventTypeInUseHasASchemaAndEverySchemaIsUsed(t *testing.T) {
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]bool{}
	for _, typ := range reg.Types() {
		schemas[typ] = true
	}
	used := usedTypes(t)
	for typ, where := range used {
		if !schemas[typ] {
			t.Errorf("%s uses event type %s, which has no schema in api/events", where, typ)
		}
	}
	for typ := range schemas {
		if _, ok := used[typ]; !ok {
			t.Errorf("api/events/%s.json describes an event type nothing produces or consumes", typ)
		}
	}
}
