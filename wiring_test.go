package switchyard_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shopServices are the reference shop's services; each is wired in exactly one
// place, its own package's Platform function.
var shopServices = []string{"users", "catalog", "inventory", "payments", "orders", "notifications"}

// wiringViolations reports, in one Go file of package pkg (its import path), a
// shop service built anywhere but in its own package: a call to the service
// package's New, or a platform.Service literal naming it.
func wiringViolations(pkg, path string, src []byte) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
	if err != nil {
		return nil, err
	}
	imports := map[string]string{} // local name → shop service
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		for _, s := range shopServices {
			if p == module+"/internal/shop/"+s {
				name := s
				if imp.Name != nil {
					name = imp.Name.Name
				}
				imports[name] = s
			}
		}
	}
	own := ""
	for _, s := range shopServices {
		if pkg == module+"/internal/shop/"+s {
			own = s
		}
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "New" {
				if x, ok := sel.X.(*ast.Ident); ok && imports[x.Name] != "" {
					out = append(out, fmt.Sprintf("%s builds the %s service (%s.New): use %s.Platform()", path, imports[x.Name], x.Name, x.Name))
				}
			}
		case *ast.CompositeLit:
			sel, ok := n.Type.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Service" {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "platform" {
				return true
			}
			for _, el := range n.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok || fmt.Sprint(kv.Key) != "Name" {
					continue
				}
				if lit, ok := kv.Value.(*ast.BasicLit); ok {
					name, _ := strconv.Unquote(lit.Value)
					for _, s := range shopServices {
						if name == s && own != s {
							out = append(out, fmt.Sprintf("%s declares the %s service's wiring: it lives in internal/shop/%s", path, s, s))
						}
					}
				}
			}
		}
		return true
	})
	return out, nil
}

func TestEachShopServiceIsWiredInOnePlace(t *testing.T) {
	t.Parallel()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil // tests of a service's own package may build it by hand
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		v, err := wiringViolations(module+"/"+filepath.ToSlash(filepath.Dir(path)), path, src)
		if err != nil {
			return err
		}
		for _, msg := range v {
			t.Error(msg)
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d files", checked)
	}
}

// The rule catches a service built by hand, and a second declaration of its wiring.
func TestTheWiringRuleCatchesASecondWiring(t *testing.T) {
	t.Parallel()
	src := `package shoptest
import (
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/platform"
)
func start() {
	orders.New(nil, orders.Config{}, orders.Deps{})
	_ = platform.Service{Name: "orders"}
	_ = orders.Platform()
}`
	v, err := wiringViolations(module+"/internal/shop/shoptest", "shoptest.go", []byte(src))
	if err != nil || len(v) != 2 {
		t.Errorf("%d violations, want 2: %v %v", len(v), v, err)
	}
	own := strings.Replace(src, "package shoptest", "package orders", 1)
	if v, _ := wiringViolations(module+"/internal/shop/orders", "service.go", []byte(own)); len(v) != 1 {
		t.Errorf("in the service's own package only the qualified New should be reported: %v", v)
	}
}
