package config_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchyard/switchyard/config"
)

var update = flag.Bool("update", false, "rewrite config/switchyard.schema.json from the loader's types")

// comments reads the doc comment of every struct field in the packages the
// configuration's types live in: type name → yaml key → the comment's first
// paragraph. Types are named with their package: config.Route, transform.Request.
func comments(t *testing.T, dirs ...string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, entry := range entries {
			name := entry.Name()
			if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			{
				ast.Inspect(f, func(n ast.Node) bool {
					ts, ok := n.(*ast.TypeSpec)
					if !ok {
						return true
					}
					st, ok := ts.Type.(*ast.StructType)
					if !ok {
						return true
					}
					fields := map[string]string{}
					for _, fl := range st.Fields.List {
						if fl.Tag == nil || fl.Doc == nil {
							continue
						}
						tag := reflect.StructTag(strings.Trim(fl.Tag.Value, "`")).Get("yaml")
						key, _, _ := strings.Cut(tag, ",")
						if key == "" || key == "-" {
							continue
						}
						text := fl.Doc.Text()
						if len(fl.Names) == 1 {
							// "Timeout bounds…" reads "`timeout` bounds…" in a YAML editor.
							if rest, ok := strings.CutPrefix(text, fl.Names[0].Name+" "); ok {
								text = "`" + key + "` " + rest
							}
						}
						if para, _, ok := strings.Cut(text, "\n\n"); ok {
							text = para
						}
						fields[key] = strings.Join(strings.Fields(text), " ")
					}
					out[f.Name.Name+"."+ts.Name.Name] = fields
					return true
				})
			}
		}
	}
	return out
}

// schemaOf is the generator: the JSON Schema of what the loader decodes into t.
type generator struct {
	t    *testing.T
	docs map[string]map[string]string
	defs map[string]any
}

var (
	durationType = reflect.TypeFor[config.Duration]()
	stdDuration  = reflect.TypeFor[time.Duration]()
	settingsType = reflect.TypeFor[config.Settings]()
	latencyType  = reflect.TypeFor[config.Latency]()
)

const durationPattern = `^(0|[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$`

func (g *generator) schema(t reflect.Type) map[string]any {
	switch t {
	case durationType, stdDuration:
		return map[string]any{"type": "string", "pattern": durationPattern, "description": "A duration with its unit: 300ms, 5s, 1m30s."}
	case settingsType:
		return map[string]any{"type": "object", "description": "The service's own options, decoded by the service into a type it owns."}
	case latencyType:
		d := g.schema(durationType)
		return map[string]any{"oneOf": []any{d, map[string]any{"type": "object", "additionalProperties": false,
			"properties": map[string]any{"p50": d, "p99": d}}}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{} // any value
	case reflect.Struct:
		name := qualified(t)
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // being built: a recursive type refers to itself
			props := map[string]any{}
			g.fields(t, props)
			g.defs[name] = map[string]any{"type": "object", "additionalProperties": false, "properties": props}
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	g.t.Fatalf("the schema has no rule for %s: add one", t)
	return nil
}

func (g *generator) fields(t reflect.Type, props map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		key, opts, _ := strings.Cut(tag, ",")
		if key == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			g.fields(ft, props)
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		s := g.schema(f.Type)
		if doc := g.docs[qualified(t)][key]; doc != "" {
			if _, isRef := s["$ref"]; isRef {
				s = map[string]any{"allOf": []any{s}, "description": doc}
			} else {
				s["description"] = doc
			}
		}
		props[key] = s
	}
}

// qualified names a type with its package's last element: config.Route.
func qualified(t reflect.Type) string { return path.Base(t.PkgPath()) + "." + t.Name() }

func generate(t *testing.T) []byte {
	t.Helper()
	g := &generator{t: t, docs: comments(t, ".", filepath.Join("..", "gateway", "transform")), defs: map[string]any{}}
	root := map[string]any{}
	g.fields(reflect.TypeFor[config.Config](), root)
	doc := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  config.SchemaURL,
		"title":                "switchyard.yaml",
		"description":          "A system declared for Switchyard: its services, their calls and events, the gateway, security and telemetry. Generated from the loader's types (config/schema_test.go); `switchyard config check` validates a file as up would.",
		"type":                 "object",
		"additionalProperties": false,
		"properties":           root,
		"$defs":                g.defs,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// The committed schema is the one the loader's types give; -update rewrites it.
func TestTheSchemaIsTheLoaders(t *testing.T) {
	got := generate(t)
	if *update {
		if err := os.WriteFile("switchyard.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, config.Schema) {
		t.Fatal("config/switchyard.schema.json is not what the loader's types give: go test ./config -run TestTheSchemaIsTheLoaders -update, and review the diff")
	}
}

func compiled(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(config.Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(config.SchemaURL, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(config.SchemaURL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlFiles are every switchyard.yaml the repository holds that the loader accepts.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	_ = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "switchyard.yaml" {
			files = append(files, path)
		}
		return nil
	})
	if len(files) < 3 {
		t.Fatalf("only %d switchyard.yaml files found: %v", len(files), files)
	}
	return files
}

// asJSON reads YAML as the values a JSON Schema validator takes.
func asJSON(t *testing.T, path string, data []byte) any {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// structs lists the paths, in the document v, of every object the schema reads as
// a struct (additionalProperties false): where an unknown key must be refused.
func structs(root map[string]any, node map[string]any, v any, at []any, out *[][]any) {
	node = resolve(root, node)
	switch x := v.(type) {
	case map[string]any:
		props, _ := node["properties"].(map[string]any)
		if node["additionalProperties"] == false {
			*out = append(*out, slices.Clone(at))
		}
		for k, child := range x {
			var sub map[string]any
			if props != nil {
				sub, _ = props[k].(map[string]any)
			} else {
				sub, _ = node["additionalProperties"].(map[string]any)
			}
			if sub != nil {
				structs(root, sub, child, append(at, k), out)
			}
		}
	case []any:
		if items, ok := node["items"].(map[string]any); ok {
			for i, child := range x {
				structs(root, items, child, append(at, i), out)
			}
		}
	}
}

// resolve follows $ref and the allOf a description wraps a $ref in.
func resolve(root, node map[string]any) map[string]any {
	for {
		if all, ok := node["allOf"].([]any); ok && len(all) == 1 {
			node = all[0].(map[string]any)
			continue
		}
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		node = root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
	}
}

// withUnknownKey returns the JSON of v with a key no type has at the object at.
func withUnknownKey(t *testing.T, v any, at []any) []byte {
	t.Helper()
	b, _ := json.Marshal(v)
	var cp any
	_ = json.Unmarshal(b, &cp)
	obj := cp
	for _, step := range at {
		switch s := step.(type) {
		case string:
			obj = obj.(map[string]any)[s]
		case int:
			obj = obj.([]any)[s]
		}
	}
	obj.(map[string]any)["zz_no_such_key"] = map[string]any{}
	out, _ := json.Marshal(cp)
	return out
}

// Every file the loader accepts, the schema accepts; a key unknown at any object
// the schema calls a struct is refused by the loader as by the schema — so the two
// know the same keys.
func TestTheSchemaAndTheLoaderKnowTheSameKeys(t *testing.T) {
	sch := compiled(t)
	var root map[string]any
	if err := json.Unmarshal(config.Schema, &root); err != nil {
		t.Fatal(err)
	}
	checked, files := 0, 0
	for _, path := range yamlFiles(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path, data, func(string) string { return "" }); err != nil {
			continue // a file kept to show a refusal
		}
		v := asJSON(t, path, data)
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s: the loader accepts it, the schema does not: %v", path, err)
			continue
		}
		files++
		var at [][]any
		structs(root, root, v, nil, &at)
		for _, where := range at {
			bad := withUnknownKey(t, v, where)
			if _, err := config.Load(path, bad, func(string) string { return "" }); err == nil {
				t.Errorf("%s: the loader accepts an unknown key at %v", path, where)
			}
			if err := sch.Validate(asJSON(t, path, bad)); err == nil {
				t.Errorf("%s: the schema accepts an unknown key at %v", path, where)
			}
			checked++
		}
	}
	t.Logf("%d files, an unknown key tried at %d of their objects", files, checked)
	if checked < 50 || files < 3 {
		t.Errorf("only %d files, %d objects checked", files, checked)
	}
}
