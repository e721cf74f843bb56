package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// MaxFileSize bounds the configuration file Load accepts.
const MaxFileSize = 1 << 20

// Error is one problem in a configuration, placed by file, line, column and key.
type Error struct {
	// File is the configuration's source, or "environment" for an override.
	File string
	// Line and Column are 1-based; 0 when unknown (e.g. a missing required key).
	Line, Column int
	// Key is the dotted path of the offending key (services.orders.listen), or the
	// environment variable's name.
	Key string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// LoadFile reads and loads the configuration at path. See Load.
func LoadFile(path string, getenv func(string) string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}}
	}
	return Load(path, data, getenv)
}

// Load parses a configuration named source (for messages), fills defaults, applies
// the environment overrides read through getenv, and validates the result.
//
// Overrides: NATS_URL → broker.url; NATS_REPLICAS → broker.replicas; REDIS_URL → redis.url;
// SWITCHYARD_DISCOVERY → discovery.kind; SWITCHYARD_DISCOVERY_DNS_NAME → discovery.dns.name;
// OTEL_EXPORTER_OTLP_ENDPOINT → telemetry.otlp_endpoint; SWITCHYARD_HUB → telemetry.hub;
// SWITCHYARD_DATA_DIR → data_dir; <NAME>_DATABASE_URL → services.<name>.database (name upper-cased, dashes
// as underscores); <NAME>_TO_<DEP>_ADDRESS → services.<name>.dependencies.<dep>.address (the gateway's
// as GATEWAY_TO_<DEP>_ADDRESS); <NAME>_REPLICAS → services.<name>.replicas; DATABASE_URL → every other service's database: a PostgreSQL URL
// whose database name gets the suffix _<name> (postgres://h/shop → shop_users), so
// each service keeps a database of its own on one server.
//
// The error, when not nil, is an Errors value listing every problem.
func Load(source string, data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg := &Config{}
	doc, err := Decode(source, data, cfg)
	var e *Error
	if errors.As(err, &e) {
		return nil, Errors{e}
	} else if err != nil {
		return nil, err
	}
	file := doc.file
	cfg.Source, cfg.file = source, file
	for name, s := range cfg.Services {
		if s == nil {
			s = &Service{}
			cfg.Services[name] = s
		}
		s.Name = name
		s.Settings.source, s.Settings.prefix = source, "services."+name+".settings"
	}
	cfg.applyDefaults()
	errs := cfg.applyEnv(getenv)
	for _, e := range cfg.validate() {
		e.File = source
		e.Line, e.Column = position(file, e.Key)
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *Error) int {
			if (a.File == "environment") != (b.File == "environment") {
				if a.File == "environment" {
					return 1 // the file's problems before the environment's
				}
				return -1
			}
			return a.Line - b.Line
		})
		return nil, errs
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = ".switchyard"
	}
	if c.Broker.Kind == "" {
		c.Broker.Kind = "nats"
	}
	if c.Broker.Embedded.Listen == "" {
		c.Broker.Embedded.Listen = "127.0.0.1:0"
	}
	if c.Broker.Embedded.Sync == "" {
		c.Broker.Embedded.Sync = "always"
	}
	if c.Discovery.Kind == "" {
		c.Discovery.Kind = "nats"
	}
	if c.Discovery.Heartbeat == 0 {
		c.Discovery.Heartbeat = Duration(time.Second)
	}
	if c.Discovery.DNS.Name == "" {
		c.Discovery.DNS.Name = "%s.switchyard.svc.cluster.local"
	}
	if c.Discovery.DNS.Port == 0 {
		c.Discovery.DNS.Port = 8080
	}
	if c.Telemetry.Hub == "" {
		c.Telemetry.Hub = "127.0.0.1:4319"
	}
	if c.Telemetry.LogLevel == "" {
		c.Telemetry.LogLevel = "info"
	}
	if c.Gateway != nil && c.Gateway.Listen == "" {
		c.Gateway.Listen = "127.0.0.1:8080"
	}
	for _, s := range c.Services {
		if s.Replicas == 0 {
			s.Replicas = 1
		}
	}
	if l := c.Load; l != nil {
		if l.Target == "" {
			l.Target = GatewayName
			if c.Gateway == nil && len(c.Services) == 1 {
				for name := range c.Services {
					l.Target = name
				}
			}
		}
		if l.Rate == 0 {
			l.Rate = 10
		}
		if l.Duration == 0 {
			l.Duration = Duration(30 * time.Second)
		}
		for _, r := range l.Mix {
			if r != nil && r.Weight == 0 {
				r.Weight = 1
			}
			if r != nil && r.Messages == 0 {
				r.Messages = 3
			}
		}
	}
	for i := range routes(c) {
		if c.Gateway.Routes[i].Auth == "" {
			c.Gateway.Routes[i].Auth = "required"
		}
		if rc := c.Gateway.Routes[i].Cache; rc != nil {
			for j := range rc.Invalidate {
				if rc.Invalidate[j].Settle == nil {
					settle := Duration(2 * time.Second)
					rc.Invalidate[j].Settle = &settle
				}
			}
		}
	}
}

func routes(c *Config) []Route {
	if c.Gateway == nil {
		return nil
	}
	return c.Gateway.Routes
}

// applyEnv applies the environment overrides and validates their form.
func (c *Config) applyEnv(getenv func(string) string) Errors {
	var errs Errors
	bad := func(name, msg string) { errs = append(errs, &Error{File: "environment", Key: name, Msg: msg}) }
	if v := getenv("SWITCHYARD_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := getenv("NATS_URL"); v != "" {
		if err := checkNATSURL(v); err != nil {
			bad("NATS_URL", err.Error())
		}
		c.Broker.URL = v
	}
	if v := getenv("NATS_REPLICAS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			bad("NATS_REPLICAS", fmt.Sprintf("want 1 to 5, got %q", v))
		}
		c.Broker.Replicas = n
	}
	if v := getenv("REDIS_URL"); v != "" {
		if err := checkURL(v, "redis", "rediss"); err != nil {
			bad("REDIS_URL", err.Error())
		}
		c.Redis.URL = v
	}
	if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		if err := checkURL(v, "http", "https"); err != nil {
			bad("OTEL_EXPORTER_OTLP_ENDPOINT", err.Error())
		}
		c.Telemetry.OTLPEndpoint = v
	}
	if v := getenv("SWITCHYARD_DISCOVERY"); v != "" {
		c.Discovery.Kind = v // validated with the file's own value below
	}
	if v := getenv("SWITCHYARD_DISCOVERY_DNS_NAME"); v != "" {
		c.Discovery.DNS.Name = v
	}
	if v := getenv("SWITCHYARD_HUB"); v != "" {
		if _, _, err := splitHostPort(v); err != nil {
			bad("SWITCHYARD_HUB", err.Error())
		}
		c.Telemetry.Hub = v
	}
	shared := getenv("DATABASE_URL")
	if shared != "" {
		if err := checkURL(shared, "postgres", "postgresql"); err != nil {
			bad("DATABASE_URL", err.Error()+" (DATABASE_URL names a PostgreSQL server; use <SERVICE>_DATABASE_URL for a SQLite file)")
			shared = ""
		}
	}
	for name, s := range c.Services {
		key := EnvName(name) + "_DATABASE_URL"
		if v := getenv(key); v != "" {
			if err := checkDatabaseURL(v); err != nil {
				bad(key, err.Error())
			}
			s.Database = v
		} else if shared != "" {
			s.Database = PerServiceDatabase(shared, name)
		}
		addresses(name, s.Dependencies, getenv)
		if v := getenv(EnvName(name) + "_REPLICAS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				bad(EnvName(name)+"_REPLICAS", fmt.Sprintf("want 1 to 10, got %q", v))
			}
			s.Replicas = n // its range is checked with the file's
		}
	}
	// An issuer's iss is its public URL, which only the deployment knows.
	for i := range c.Security.Issuers {
		is := &c.Security.Issuers[i]
		if v := getenv("ISSUER_" + EnvName(is.Name)); v != "" {
			is.Issuer = v
		}
	}
	if g := c.Gateway; g != nil {
		addresses("gateway", g.Dependencies, getenv)
		// The services its routes lead to, which it need not declare.
		for _, r := range g.Routes {
			name := "GATEWAY_TO_" + EnvName(r.Service) + "_ADDRESS"
			if v := getenv(name); r.Service != "" && v != "" {
				if errs2 := (&Dependency{Address: v}).validateAddress(name); len(errs2) > 0 {
					bad(name, errs2[0].Msg)
				}
				if g.addresses == nil {
					g.addresses = map[string]string{}
				}
				g.addresses[r.Service] = v
			}
		}
	}
	return errs
}

// addresses applies <CALLER>_TO_<DEPENDENCY>_ADDRESS to the caller's declared
// dependencies (validated with the file's own addresses).
func addresses(caller string, deps map[string]*Dependency, getenv func(string) string) {
	for dep, d := range deps {
		if v := getenv(EnvName(caller) + "_TO_" + EnvName(dep) + "_ADDRESS"); v != "" && d != nil {
			d.Address = v
		}
	}
}

// EnvName is the prefix of a service's environment variables: its name upper-cased
// with dashes as underscores.
func EnvName(service string) string {
	return strings.ToUpper(strings.ReplaceAll(service, "-", "_"))
}

// PerServiceDatabase derives a service's own database URL from a server URL by
// suffixing the database name with _<service> (or naming it switchyard_<service>).
func PerServiceDatabase(serverURL, service string) string {
	u, err := parseURL(serverURL)
	if err != nil {
		return serverURL
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "switchyard"
	}
	u.Path = "/" + db + "_" + strings.ReplaceAll(service, "-", "_")
	return u.String()
}

// Errorf returns a problem with the key at the dotted path, placed in the file the
// configuration came from: for checks made after loading, with what only the
// binary knows (the event schemas it carries, the gRPC methods it links).
func (c *Config) Errorf(key, format string, args ...any) *Error {
	e := &Error{File: c.Source, Key: key, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = position(c.file, key)
	return e
}

// Decode reads data (one YAML document, named source in errors) into v strictly,
// as Load reads switchyard.yaml: an unknown key or a value of the wrong type is an
// *Error naming the line, column and key. Other files of the toolkit (fault
// scenarios) use it, and Place to put their own findings on the line of a key.
func Decode(source string, data []byte, v any) (_ *Document, err error) {
	defer func() {
		// The YAML library has panicked on some malformed files (a tag on a
		// sequence before a comment; found by FuzzLoadNamesTheFileOfEveryRefusal):
		// the file is refused like any other, never the process.
		if r := recover(); r != nil {
			err = &Error{File: source, Msg: fmt.Sprintf("the YAML cannot be read (the parser failed: %v); look at its tags (!name) and anchors", r)}
		}
	}()
	if len(data) > MaxFileSize {
		return nil, &Error{File: source, Msg: fmt.Sprintf("%d bytes is more than %d", len(data), MaxFileSize)}
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, yamlError(source, err)
	}
	if len(file.Docs) > 1 {
		return nil, &Error{File: source, Msg: "want one YAML document, found several"}
	}
	if len(file.Docs) == 1 && file.Docs[0].Body != nil {
		if err := yaml.NodeToValue(file.Docs[0].Body, v, yaml.Strict()); err != nil {
			e := yamlError(source, err)
			e.Key = keyAt(file.Docs[0].Body, "", e.Line, e.Column)
			return nil, e
		}
	}
	return &Document{source: source, file: file}, nil
}

// Document is a decoded file, to place errors in.
type Document struct {
	source string
	file   *ast.File
}

// Errorf returns an error at key's place in the document.
func (d *Document) Errorf(key, format string, args ...any) *Error {
	e := &Error{File: d.source, Key: key, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = position(d.file, key)
	return e
}

// yamlError turns a parser or decoder error into an Error with its position.
func yamlError(source string, err error) *Error {
	var posErr *positionError
	if errors.As(err, &posErr) {
		return &Error{File: source, Line: posErr.tok.Position.Line, Column: posErr.tok.Position.Column, Msg: posErr.msg}
	}
	var yerr yaml.Error
	if errors.As(err, &yerr) {
		e := &Error{File: source, Msg: yerr.GetMessage()}
		if tok := yerr.GetToken(); tok != nil && tok.Position != nil {
			e.Line, e.Column = tok.Position.Line, tok.Position.Column
		}
		var unknown *yaml.UnknownFieldError
		if errors.As(err, &unknown) {
			e.Msg = strings.Replace(e.Msg, "unknown field", "unknown key", 1)
		}
		var typeErr *yaml.TypeError
		if errors.As(err, &typeErr) && typeErr.DstType != nil {
			e.Msg = "want " + describe(typeErr.DstType)
			if tok := typeErr.Token; tok != nil {
				e.Msg += fmt.Sprintf(", got %q", tok.Value)
			}
		}
		return e
	}
	return &Error{File: source, Msg: err.Error()}
}

// describe names a Go type in the words of a YAML author.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Pointer:
		return describe(t.Elem())
	default:
		return "a mapping of keys to values"
	}
}

// positionError is a decoding error raised by one of our own value types, which know
// the node they were decoding.
type positionError struct {
	tok *token.Token
	msg string
}

func (e *positionError) Error() string { return e.msg }

// UnmarshalYAML reads a duration string and reports a bad one with its position.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	tok := node.GetToken()
	s, ok := node.(*ast.StringNode)
	if !ok {
		// An integer without unit is the classic mistake ("timeout: 5").
		return &positionError{tok: tok, msg: fmt.Sprintf("%q is not a duration: write it with a unit, e.g. \"5s\" or \"250ms\"", node.String())}
	}
	v, err := time.ParseDuration(s.Value)
	if err != nil {
		return &positionError{tok: tok, msg: fmt.Sprintf("%q is not a duration: write it with a unit, e.g. \"5s\" or \"250ms\"", s.Value)}
	}
	if v < 0 {
		return &positionError{tok: tok, msg: fmt.Sprintf("%q is negative", s.Value)}
	}
	*d = Duration(v)
	return nil
}

// position finds the line and column of the key at the dotted path in file; 0, 0 when
// the key is absent (e.g. a required key that was left out: then the nearest present
// parent is used).
func position(file *ast.File, path string) (line, col int) {
	if file == nil || len(file.Docs) == 0 || path == "" {
		return 0, 0
	}
	node := file.Docs[0].Body
	var best *token.Token
	for _, seg := range strings.Split(path, ".") {
		if node == nil {
			break
		}
		if i, err := strconv.Atoi(seg); err == nil {
			seq, ok := node.(*ast.SequenceNode)
			if !ok || i >= len(seq.Values) {
				break
			}
			node = seq.Values[i]
			if t := node.GetToken(); t != nil {
				best = t
			}
			continue
		}
		kv := lookupKey(node, seg)
		if kv == nil {
			break
		}
		best = kv.Key.GetToken()
		node = kv.Value
	}
	if best == nil || best.Position == nil {
		return 0, 0
	}
	return best.Position.Line, best.Position.Column
}

func lookupKey(node ast.Node, key string) *ast.MappingValueNode {
	switch n := node.(type) {
	case *ast.MappingNode:
		for _, kv := range n.Values {
			if kv.Key.GetToken() != nil && kv.Key.GetToken().Value == key {
				return kv
			}
		}
	case *ast.MappingValueNode:
		if n.Key.GetToken() != nil && n.Key.GetToken().Value == key {
			return n
		}
	}
	return nil
}

// keyAt returns the dotted path of the key or value at line:col under node, or "".
func keyAt(node ast.Node, prefix string, line, col int) string {
	at := func(n ast.Node) bool {
		t := n.GetToken()
		return t != nil && t.Position != nil && t.Position.Line == line && t.Position.Column == col
	}
	join := func(seg string) string {
		if prefix == "" {
			return seg
		}
		return prefix + "." + seg
	}
	switch n := node.(type) {
	case *ast.MappingNode:
		for _, kv := range n.Values {
			if k := keyAt(kv, prefix, line, col); k != "" {
				return k
			}
		}
	case *ast.MappingValueNode:
		path := join(n.Key.GetToken().Value)
		if at(n.Key) || (n.Value != nil && at(n.Value)) {
			return path
		}
		if n.Value != nil {
			return keyAt(n.Value, path, line, col)
		}
	case *ast.SequenceNode:
		for i, v := range n.Values {
			p := join(strconv.Itoa(i))
			if at(v) {
				return p
			}
			if k := keyAt(v, p, line, col); k != "" {
				return k
			}
		}
	}
	return ""
}
