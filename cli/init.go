package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"unicode"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/design"
)

// A system as init asks about it: the questions of a communication design —
// which services and who owns them, who calls whom, which events go where, what
// must reach clients in real time, what faces clients, and on what it runs.
type system struct {
	Name     string        `yaml:"name"`
	Module   string        `yaml:"module"`
	Services []serviceSpec `yaml:"services"`
	Calls    []string      `yaml:"calls"`   // "caller -> callee [rest|grpc]"
	Events   []string      `yaml:"events"`  // "publisher: domain.entity.verb.v1 -> subscriber, subscriber"
	Streams  []string      `yaml:"streams"` // "service: /path"
	Entry    []string      `yaml:"entry"`   // services clients reach through the gateway
	Broker   string        `yaml:"broker"`  // nats or kafka

	calls   []callSpec
	events  []eventSpec
	streams []streamSpec
}

type serviceSpec struct {
	Name        string `yaml:"name"`
	Owner       string `yaml:"owner"`
	Description string `yaml:"description"`
}

type callSpec struct{ from, to, protocol string }

type eventSpec struct {
	publisher, typ string
	subscribers    []string
}

type streamSpec struct{ service, path string }

var (
	callLine   = regexp.MustCompile(`^\s*([a-z][a-z0-9-]*)\s*->\s*([a-z][a-z0-9-]*)\s*(rest|grpc)?\s*$`)
	eventLine  = regexp.MustCompile(`^\s*([a-z][a-z0-9-]*)\s*:\s*([a-z0-9_.]+)\s*(?:->\s*(.*))?$`)
	streamLine = regexp.MustCompile(`^\s*([a-z][a-z0-9-]*)\s*:\s*(/\S*)\s*$`)
	nameRe     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
)

// parse reads the line forms and checks the system is whole: every name declared,
// every event type well formed, no call to itself.
func (s *system) parse() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if !nameRe.MatchString(s.Name) {
		bad("name: %q is not a name (lower-case letters, digits and dashes)", s.Name)
	}
	known := map[string]bool{}
	for i, svc := range s.Services {
		switch {
		case !nameRe.MatchString(svc.Name):
			bad("services[%d]: %q is not a service name (lower-case letters, digits and dashes, at most 31)", i, svc.Name)
		case svc.Name == config.GatewayName:
			bad("services[%d]: gateway is the platform's own; name the service otherwise", i)
		case known[svc.Name]:
			bad("services[%d]: %s is listed twice", i, svc.Name)
		}
		known[svc.Name] = true
	}
	if len(s.Services) == 0 {
		bad("services: list at least one")
	}
	for i, c := range s.Calls {
		m := callLine.FindStringSubmatch(c)
		switch {
		case m == nil:
			bad("calls[%d]: %q: want \"caller -> callee\", optionally followed by rest or grpc", i, c)
		case !known[m[1]] || !known[m[2]]:
			bad("calls[%d]: %q: %s", i, c, unknown(known, m[1], m[2]))
		case m[1] == m[2]:
			bad("calls[%d]: %q: a service does not call itself", i, c)
		default:
			s.calls = append(s.calls, callSpec{from: m[1], to: m[2], protocol: cmpOr(m[3], "rest")})
		}
	}
	published := map[string]bool{}
	for i, e := range s.Events {
		m := eventLine.FindStringSubmatch(e)
		if m == nil {
			bad("events[%d]: %q: want \"publisher: domain.entity.verb.v1 -> subscriber, subscriber\"", i, e)
			continue
		}
		ev := eventSpec{publisher: m[1], typ: m[2]}
		for _, sub := range strings.Split(m[3], ",") {
			if sub = strings.TrimSpace(sub); sub != "" {
				ev.subscribers = append(ev.subscribers, sub)
			}
		}
		switch {
		case !config.EventType.MatchString(ev.typ):
			bad("events[%d]: %q is not an event type <domain>.<entity>.<past-tense verb>.v<N>", i, ev.typ)
		case published[ev.typ]:
			bad("events[%d]: %s is published twice", i, ev.typ)
		case !known[ev.publisher]:
			bad("events[%d]: %q: %s", i, e, unknown(known, ev.publisher))
		case slices.ContainsFunc(ev.subscribers, func(n string) bool { return !known[n] }):
			bad("events[%d]: %q: %s", i, e, unknown(known, ev.subscribers...))
		default:
			s.events = append(s.events, ev)
		}
		published[ev.typ] = true
	}
	for i, st := range s.Streams {
		m := streamLine.FindStringSubmatch(st)
		switch {
		case m == nil:
			bad("streams[%d]: %q: want \"service: /path\"", i, st)
		case !known[m[1]]:
			bad("streams[%d]: %q: %s", i, st, unknown(known, m[1]))
		default:
			if _, _, _, err := config.ParseEndpoint("WS " + m[2]); err != nil {
				bad("streams[%d]: %v", i, err)
				continue
			}
			s.streams = append(s.streams, streamSpec{service: m[1], path: m[2]})
		}
	}
	for i, n := range s.Entry {
		if !known[n] {
			bad("entry[%d]: %s", i, unknown(known, n))
		}
	}
	if len(s.Entry) == 0 {
		// What nothing else calls faces the clients.
		for _, svc := range s.Services {
			if !slices.ContainsFunc(s.calls, func(c callSpec) bool { return c.to == svc.Name }) {
				s.Entry = append(s.Entry, svc.Name)
			}
		}
	}
	switch s.Broker {
	case "":
		s.Broker = "nats"
	case "nats", "kafka":
	default:
		bad("broker: want nats or kafka, got %q", s.Broker)
	}
	if s.Module == "" {
		s.Module = "example.com/" + s.Name
	}
	if len(errs) > 0 {
		return Usagef("init: the system is not whole:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

func unknown(known map[string]bool, names ...string) string {
	for _, n := range names {
		if !known[n] {
			return fmt.Sprintf("no service %q among the services", n)
		}
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// templates are the systems init starts from without questions.
func template(name string) (*system, error) {
	switch name {
	case "minimal":
		return &system{Name: "minimal", Services: []serviceSpec{
			{Name: "web", Owner: "web-team", Description: "Answers the clients; asks accounts who they are."},
			{Name: "accounts", Owner: "identity-team", Description: "Keeps the accounts, and says when one changes."},
		}, Calls: []string{"web -> accounts rest"}, Events: []string{"accounts: accounts.account.updated.v1 -> web"}}, nil
	case "shop":
		return fromPlatform("shop", switchyard.DefaultConfig)
	}
	return nil, Usagef("--template: want minimal or shop, got %q", name)
}

// fromPlatform reads a platform's topology back into a system: its services,
// calls, events, streams and entry points — to simulate all of it.
func fromPlatform(name string, file []byte) (*system, error) {
	cfg, err := config.Load(name+".yaml", file, nil)
	if err != nil {
		return nil, err
	}
	s := &system{Name: name, Broker: cfg.Broker.Kind}
	subscribers := map[string][]string{}
	for _, svcName := range cfg.ServiceNames() {
		for _, t := range cfg.Service(svcName).Subscriptions {
			subscribers[t] = append(subscribers[t], svcName)
		}
	}
	for _, svcName := range cfg.ServiceNames() {
		svc := cfg.Service(svcName)
		s.Services = append(s.Services, serviceSpec{Name: svc.Name, Owner: svc.Owner, Description: svc.Description})
		for _, dep := range slices.Sorted(maps.Keys(svc.Dependencies)) {
			s.Calls = append(s.Calls, fmt.Sprintf("%s -> %s %s", svc.Name, dep, svc.Dependencies[dep].Protocol))
		}
		for _, t := range svc.Publishes {
			s.Events = append(s.Events, fmt.Sprintf("%s: %s -> %s", svc.Name, t, strings.Join(subscribers[t], ", ")))
		}
	}
	if g := cfg.Gateway; g != nil {
		for _, r := range g.Routes {
			if r.Service == "" {
				continue
			}
			if r.Streaming {
				s.Streams = append(s.Streams, fmt.Sprintf("%s: %s", r.Service, servicePath(r)))
			} else if !slices.Contains(s.Entry, r.Service) {
				s.Entry = append(s.Entry, r.Service)
			}
		}
	}
	return s, nil
}

func servicePath(r config.Route) string {
	if r.Path != "" {
		return r.Path
	}
	return strings.TrimPrefix(r.Prefix, "/api")
}

const initUsage = `init [--dir .] [--template minimal|shop | --from answers.yaml | --name N --service "name owner" ... --call "a -> b [rest|grpc]" ... --event "a: d.e.v.v1 -> b, c" ... --stream "a: /path" ... --entry a,b --broker nats|kafka] [--module path] [--force] [--no-tidy]`

// cmdInit writes a new project for a system: asked on a terminal, or taken from
// flags, a file or a template.
func cmdInit(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("init")
	dir := fs.String("dir", ".", "the `directory` to write the project into")
	tmpl := fs.String("template", "", "start from a template, `minimal|shop`: minimal (two services) or shop (the reference shop, every service simulated)")
	from := fs.String("from", "", "read the answers from a YAML `file` (name, services, calls, events, streams, entry, broker)")
	name := fs.String("name", "", "the system's `name`")
	module := fs.String("module", "", "the Go module `path` of the project (default example.com/<name>)")
	var services, calls, events, streams requestFlags
	fs.Var(&services, "service", "a service, its `spec` \"name owner [description]\" (repeat)")
	fs.Var(&calls, "call", "a synchronous call, its `spec` \"caller -> callee [rest|grpc]\" (repeat)")
	fs.Var(&events, "event", "an event, its `spec` \"publisher: domain.entity.verb.v1 -> subscriber, subscriber\" (repeat)")
	fs.Var(&streams, "stream", "a real-time stream to clients, its `spec` \"service: /path\" (repeat)")
	entry := fs.String("entry", "", "comma-separated `names` of the services clients reach through the gateway (default: those nothing calls)")
	broker := fs.String("broker", "", "the event broker, `nats|kafka` (default nats)")
	force := fs.Bool("force", false, "overwrite files that exist")
	noTidy := fs.Bool("no-tidy", false, "do not run go mod tidy in the project")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("init takes no arguments (the system is given by flags, --from or --template), got %q", fs.Arg(0))
	}
	var sys *system
	var err error
	switch {
	case *tmpl != "":
		sys, err = template(*tmpl)
	case *from != "":
		sys, err = readAnswers(*from)
	case *name != "" || len(services) > 0:
		sys = &system{Name: *name, Calls: calls, Events: events, Streams: streams, Broker: *broker}
		for _, s := range services {
			f := strings.Fields(s)
			spec := serviceSpec{}
			if len(f) > 0 {
				spec.Name = f[0]
			}
			if len(f) > 1 {
				spec.Owner = f[1]
			}
			if len(f) > 2 {
				spec.Description = strings.Join(f[2:], " ")
			}
			sys.Services = append(sys.Services, spec)
		}
	case e.Stdin != nil:
		sys, err = ask(e.Stdin, e.Stdout)
	default:
		return Usagef("init: say what to build — --template minimal, --from answers.yaml, or --name and --service flags (on a terminal, init asks)")
	}
	if err != nil {
		return err
	}
	if *module != "" {
		sys.Module = *module
	}
	if *entry != "" {
		sys.Entry = strings.Split(*entry, ",")
		for i := range sys.Entry {
			sys.Entry[i] = strings.TrimSpace(sys.Entry[i])
		}
	}
	if *broker != "" {
		sys.Broker = *broker
	}
	if err := sys.parse(); err != nil {
		return err
	}
	files, err := e.project(sys)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	if !*force {
		for _, name := range append(slices.Sorted(maps.Keys(files)), "DESIGN.md") {
			if _, err := os.Stat(filepath.Join(*dir, name)); err == nil {
				return Usagef("init: %s exists; pass --force to overwrite", filepath.Join(*dir, name))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(*dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil { //nolint:gosec // project files, read by all
			return err
		}
		fmt.Fprintf(e.Stdout, "wrote %s\n", path)
	}
	doc, err := e.designDocument(filepath.Join(*dir, "switchyard.yaml"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*dir, "DESIGN.md"), doc, 0o644); err != nil { //nolint:gosec // a project file
		return err
	}
	fmt.Fprintf(e.Stdout, "wrote %s\n", filepath.Join(*dir, "DESIGN.md"))
	if !*noTidy {
		tidy := exec.CommandContext(ctx, "go", "mod", "tidy")
		tidy.Dir, tidy.Stdout, tidy.Stderr = *dir, e.Stderr, e.Stderr
		if err := tidy.Run(); err != nil {
			fmt.Fprintf(e.Stderr, "go mod tidy did not finish (%v): run it in %s before go run . up\n", err, *dir)
		}
	}
	fmt.Fprintf(e.Stdout, "\n%s: %d services, every one simulated. Next:\n\n  cd %s\n  go run . up          # run it: an embedded broker, a SQLite file each\n  go run . load        # send it the traffic switchyard.yaml declares\n  go run . diagram     # how its services talked\n\nREADME.md says how to replace a simulated service with its code.\n",
		sys.Name, len(sys.Services), *dir)
	return nil
}

func readAnswers(path string) (*system, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Usagef("--from: %v", err)
	}
	var s system
	if err := yaml.UnmarshalWithOptions(data, &s, yaml.Strict()); err != nil {
		return nil, Usagef("--from %s: %v", path, yaml.FormatError(err, false, true))
	}
	return &s, nil
}

// ask puts the questions on a terminal.
func ask(in io.Reader, out io.Writer) (*system, error) {
	r := bufio.NewScanner(in)
	line := func(prompt, def string) string {
		fmt.Fprintf(out, "%s [%s]: ", prompt, def)
		if !r.Scan() {
			return def
		}
		return cmpOr(strings.TrimSpace(r.Text()), def)
	}
	lines := func(prompt string) []string {
		fmt.Fprintf(out, "%s (an empty line ends):\n", prompt)
		var list []string
		for {
			fmt.Fprint(out, "  > ")
			if !r.Scan() || strings.TrimSpace(r.Text()) == "" {
				return list
			}
			list = append(list, strings.TrimSpace(r.Text()))
		}
	}
	fmt.Fprintln(out, "A new Switchyard system. Each answer can be changed later in switchyard.yaml.")
	s := &system{Name: line("The system's name", "myapp")}
	for _, l := range lines("Its services, one per line: name, owning team, then a sentence of what it does") {
		f := strings.Fields(l)
		spec := serviceSpec{Name: f[0]}
		if len(f) > 1 {
			spec.Owner = f[1]
		}
		if len(f) > 2 {
			spec.Description = strings.Join(f[2:], " ")
		}
		s.Services = append(s.Services, spec)
	}
	s.Calls = lines("Synchronous calls, \"caller -> callee\" and rest or grpc")
	s.Events = lines("Events, \"publisher: domain.entity.verb.v1 -> subscriber, subscriber\"")
	s.Streams = lines("Real-time streams to clients, \"service: /path\"")
	if e := line("Services clients reach through the gateway, comma-separated", "those nothing calls"); e != "those nothing calls" {
		s.Entry = strings.Split(strings.ReplaceAll(e, " ", ""), ",")
	}
	s.Broker = line("The event broker: nats or kafka", "nats")
	if err := r.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// project renders the files of a new project for sys, its design document
// aside (drawn from the files once written).
func (e *Env) project(sys *system) (map[string][]byte, error) {
	yml := platformFile(sys)
	files := map[string][]byte{
		"switchyard.yaml": []byte(yml),
		"main.go":         []byte(mainFile(sys)),
		"go.mod":          []byte(goMod(sys)),
		"README.md":       []byte(readme(sys)),
		".gitignore":      []byte("/.switchyard/\n/" + sys.Name + "\n"),
	}
	for _, ev := range sys.events {
		files["events/"+ev.typ+".json"] = []byte(schema(ev))
	}
	if _, err := config.Load("switchyard.yaml", []byte(yml), nil); err != nil {
		return nil, fmt.Errorf("init wrote a platform that does not load (a bug in init): %w", err)
	}
	return files, nil
}

// designDocument renders DESIGN.md for the platform file written at path: of
// the new system alone, none of this binary's own application in it.
func (e *Env) designDocument(path string) ([]byte, error) {
	bare := *e
	bare.App = &App{Name: e.App.Name}
	cfg, _, err := bare.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return bare.render(cfg)
}

// render is the design document of cfg.
func (e *Env) render(cfg *config.Config) ([]byte, error) {
	in, err := e.designInput(cfg)
	if err != nil {
		return nil, err
	}
	var doc bytes.Buffer
	err = design.Render(&doc, in)
	return doc.Bytes(), err
}

// plan says what a service serves, and from which of its endpoints its calls and
// events go.
type plan struct {
	endpoints []string // as written in simulate
	main      string   // the endpoint that calls and publishes
}

func (s *system) plans() map[string]*plan {
	out := map[string]*plan{}
	for _, svc := range s.Services {
		p := &plan{}
		add := func(ep string) {
			if !slices.Contains(p.endpoints, ep) {
				p.endpoints = append(p.endpoints, ep)
			}
		}
		if slices.Contains(s.Entry, svc.Name) {
			add("POST /v1/" + svc.Name)
			add("GET /v1/" + svc.Name + "/{id}")
		}
		for _, c := range s.calls {
			if c.to == svc.Name {
				add(calledEndpoint(s, svc.Name, c.protocol))
			}
		}
		for _, st := range s.streams {
			if st.service == svc.Name {
				add("WS " + st.path)
			}
		}
		for _, ep := range p.endpoints {
			if !strings.HasPrefix(ep, "WS ") {
				p.main = ep
				break
			}
		}
		out[svc.Name] = p
	}
	return out
}

// calledEndpoint is what callers of svc call over protocol.
func calledEndpoint(sys *system, svc, protocol string) string {
	if protocol == "grpc" {
		return goName(sys.Name) + "." + goName(svc) + ".v1." + title(svc) + "Service/Get"
	}
	return "GET /v1/" + svc + "/{id}"
}

func goName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func title(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		if r == '-' {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
		}
		b.WriteRune(r)
		up = false
	}
	return b.String()
}

// platformFile writes a commented switchyard.yaml: every service simulated.
func platformFile(sys *system) string {
	plans := sys.plans()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# yaml-language-server: $schema=%s\n", config.SchemaURL) // editors complete and check the file
	w("# switchyard.yaml — %s: its services, who calls whom under which policy, which\n", sys.Name)
	w("# events go where, and what faces the clients. Written by switchyard init; yours now.\n#\n")
	w("# Every service below runs as a simulation of its simulate block until its code is\n")
	w("# written: a real process with its own database, outbox and inbox, answering after\n")
	w("# the declared latency. To replace one, build it into main.go and delete its block.\n")
	w("version: 1\n\n# SQLite files, the embedded broker's storage, the running stack's state.\ndata_dir: .switchyard\n\n")
	w("# The event schemas, <type>.json each: simulations draw their events' data from them.\nevents: events\n\n")
	if sys.Broker == "kafka" {
		w("broker:\n  # Kafka: name the seed brokers (KAFKA runs beside; up does not embed one).\n  kind: kafka\n  url: 127.0.0.1:9092\n\n")
		w("discovery:\n  # Without NATS, services find each other at their listen addresses.\n  kind: static\n\n")
	} else {
		w("broker:\n  # NATS JetStream; with no url, up embeds one (never on 4222).\n  kind: nats\n  embedded: {listen: 127.0.0.1:0, sync: always}\n\n")
		w("discovery:\n  kind: nats\n  heartbeat: 1s\n\n")
	}
	w("services:\n")
	port := 9101
	for _, svc := range sys.Services {
		p := plans[svc.Name]
		w("  %s:\n", svc.Name)
		if svc.Owner != "" {
			w("    owner: %s\n", svc.Owner)
		}
		if svc.Description != "" {
			w("    description: %s\n", yamlString(svc.Description))
		}
		w("    listen: 127.0.0.1:%d\n", port)
		port++
		var deps []callSpec
		for _, c := range sys.calls {
			if c.from == svc.Name {
				deps = append(deps, c)
			}
		}
		if len(deps) > 0 {
			w("    dependencies:\n")
			for _, d := range deps {
				w("      %s:\n        protocol: %s\n        policy:\n", d.to, d.protocol)
				w("          timeout: 2s\n          try_timeout: 500ms\n          retry: {max_attempts: 3, backoff: 50ms, max_backoff: 500ms}\n")
				w("          breaker: {failure_ratio: 0.5, min_calls: 20, window: 10s, open_for: 5s}\n")
			}
		}
		var pubs, subs []string
		for _, ev := range sys.events {
			if ev.publisher == svc.Name {
				pubs = append(pubs, ev.typ)
			}
			if slices.Contains(ev.subscribers, svc.Name) {
				subs = append(subs, ev.typ)
			}
		}
		if len(pubs) > 0 {
			w("    publishes:\n")
			for _, t := range pubs {
				w("      - %s\n", t)
			}
		}
		if len(subs) > 0 {
			w("    subscriptions:\n")
			for _, t := range subs {
				w("      - %s\n", t)
			}
		}
		// effects writes what the service's main endpoint (or, without one, each
		// handler) does: its calls to every dependency, the events it publishes.
		effects := func() {
			if len(deps) > 0 {
				w("          calls:\n")
				for _, d := range deps {
					w("            - {to: %s, endpoint: %q}\n", d.to, calledEndpoint(sys, d.to, d.protocol))
				}
			}
			if len(pubs) > 0 {
				w("          publishes:\n")
				for _, t := range pubs {
					w("            - {type: %s}\n", t)
				}
			}
		}
		w("    simulate:\n")
		if len(p.endpoints) > 0 {
			w("      endpoints:\n")
			for _, ep := range p.endpoints {
				w("        - endpoint: %q\n", ep)
				if strings.HasPrefix(ep, "WS ") {
					w("          interval: 200ms      # a message every interval, until the client leaves\n          message_bytes: 256\n")
					continue
				}
				w("          latency: {p50: 5ms, p99: 25ms}\n          error_rate: 0\n")
				if ep == p.main {
					effects()
				}
			}
		}
		if len(subs) > 0 {
			w("      handlers:\n")
			for _, t := range subs {
				w("        - event: %s\n          latency: 2ms\n", t)
				if p.main == "" { // reached only by events: its calls and events go from here
					effects()
				}
			}
		}
		if len(p.endpoints) == 0 && len(subs) == 0 {
			w("      endpoints: []   # nothing reaches this service yet: give it an endpoint or a subscription\n")
		}
		w("\n")
	}
	var routed []string
	for _, svc := range sys.Services {
		if slices.Contains(sys.Entry, svc.Name) || slices.ContainsFunc(sys.streams, func(s streamSpec) bool { return s.service == svc.Name }) {
			routed = append(routed, svc.Name)
		}
	}
	if len(routed) == 0 {
		return b.String()
	}
	w("# The single entry point. auth: none until an identity provider is configured;\n")
	w("# rate limits are per client address.\ngateway:\n  listen: 127.0.0.1:%d\n  routes:\n", 9100)
	for _, svc := range sys.Services {
		if slices.Contains(sys.Entry, svc.Name) {
			w("    - {prefix: /api/v1/%s, service: %s, auth: none, timeout: 10s, rate_limit: {requests: 200, burst: 400}}\n", svc.Name, svc.Name)
		}
	}
	for _, st := range sys.streams {
		// Streams have routes of their own (no shedding, a long timeout), apart
		// from their service's requests.
		w("    - {prefix: /api/streams%s, path: %s, service: %s, auth: none, streaming: true, timeout: 1h}\n", routePrefix(st.path), routePrefix(st.path), st.service)
	}
	w("\n# What `go run . load` sends: requests drawn by weight, at a rate, through the gateway.\nload:\n  rate: 20\n  duration: 30s\n  mix:\n")
	for _, svc := range sys.Services {
		if slices.Contains(sys.Entry, svc.Name) {
			w("    - {request: \"POST /api/v1/%s\", weight: 2, body: {id: \"{{id}}\"}}\n", svc.Name)
			w("    - {request: \"GET /api/v1/%s/{id}\", weight: 3}\n", svc.Name)
		}
	}
	for _, st := range sys.streams {
		w("    - {request: \"WS /api/streams%s\", weight: 1, messages: 3}\n", st.path)
	}
	return b.String()
}

// routePrefix is the part of a stream's path before its first {parameter}.
func routePrefix(path string) string {
	if i := strings.Index(path, "/{"); i >= 0 {
		return path[:i]
	}
	return path
}

func yamlString(s string) string {
	if strings.ContainsAny(s, ":#{}[]&*!|>'\"%@`,") || strings.HasPrefix(s, "-") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// schema is a starting JSON Schema for an event: the id of what it is about.
func schema(ev eventSpec) string {
	parts := strings.Split(ev.typ, ".")
	entity := parts[1]
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": %q,
  "description": "Written by switchyard init: describe what happened, and the fields a consumer needs. Subject: the %s's id.",
  "type": "object",
  "additionalProperties": false,
  "required": [%q, "at"],
  "properties": {
    %q: {"type": "string", "minLength": 1, "maxLength": 64},
    "at": {"type": "string", "format": "date-time"}
  }
}
`, ev.typ, entity, entity+"_id", entity+"_id")
}

// mainFile is the project's binary: the whole command line over the platform,
// with no service of its own yet.
func mainFile(sys *system) string {
	return fmt.Sprintf(`// Command %[1]s runs %[1]s on Switchyard: every service switchyard.yaml declares,
// simulated until its code is written here.
//
//	go run . up        every service on this machine: an embedded broker, a SQLite file each
//	go run . load      the traffic switchyard.yaml declares, at a rate
//	go run . diagram   how the services talked, from their traces
//	go run . verify    exit 1 if the traffic and switchyard.yaml disagree
package main

import (
	_ "embed"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/platform"
)

//go:embed switchyard.yaml
var platformFile []byte

func main() {
	cli.Main(cli.App{Name: %[1]q, Config: platformFile, ConfigName: "switchyard.yaml (built-in)", Services: []platform.Service{
		platform.Gateway(platform.GatewayOptions{}),
		// Your first real service: a platform.Service{Name: "...", Build: ...} here
		// (see README.md), then delete its simulate block from switchyard.yaml.
	}})
}
`, sys.Name)
}

// goMod requires this switchyard: the released version the binary was built
// from, or — for a development build — the checkout it was built in.
func goMod(sys *system) string {
	version, replace := "v0.0.0", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		mod := info.Main
		for _, d := range info.Deps {
			if d.Path == "github.com/switchyard/switchyard" {
				mod = *d
			}
		}
		if mod.Path == "github.com/switchyard/switchyard" && mod.Version != "" && mod.Version != "(devel)" {
			version = mod.Version
		}
	}
	if version == "v0.0.0" {
		if root, err := checkout(); err == nil {
			replace = "\nreplace github.com/switchyard/switchyard => " + root + "\n"
		}
	}
	return fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire github.com/switchyard/switchyard %s\n%s", sys.Module, version, replace)
}

// checkout finds the switchyard module a development build runs from: the working
// directory or one above it.
func checkout() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/switchyard/switchyard\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no switchyard checkout above the working directory")
		}
		dir = parent
	}
}

func readme(sys *system) string {
	plans := sys.plans()
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\nA system on [Switchyard](https://github.com/switchyard/switchyard), written by `switchyard init`.\n", sys.Name)
	fmt.Fprintf(&b, "Every service is declared in `switchyard.yaml` and, until its code exists, runs as a\nsimulation of what its `simulate:` block says: a real process with its own database,\noutbox and inbox, calling its dependencies through the real call stack, publishing\nits events through the broker.\n\n")
	fmt.Fprintf(&b, "```sh\ngo run . up        # every service on this machine\ngo run . load      # in another terminal: the traffic switchyard.yaml declares\ngo run . diagram   # how the services talked, drawn from their traces\ngo run . verify    # exit 1 if the traffic and switchyard.yaml disagree\n```\n\n")
	fmt.Fprintf(&b, "`DESIGN.md` is the communication design, rendered from `switchyard.yaml` (`go run . design -o DESIGN.md` renders it again).\n\n")
	fmt.Fprintf(&b, "## The services\n\n| Service | Owner | Serves |\n|---|---|---|\n")
	for _, svc := range sys.Services {
		serves := "events only"
		if eps := plans[svc.Name].endpoints; len(eps) > 0 {
			serves = "`" + strings.Join(eps, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", svc.Name, cmpOr(svc.Owner, "—"), serves)
	}
	first := sys.Services[0].Name
	fmt.Fprintf(&b, `
## Replacing a simulation with code

One service at a time, the rest staying simulated:

1. Write the service as a `+"`platform.Service`"+`: its name and a Build function that receives
   the parts its declaration implies — its database, a client per dependency under
   its policy, the outbox, inbox-backed consumers — and returns its handler:

   `+"```go"+`
   func %[1]s() platform.Service {
   	return platform.Service{Name: %[2]q, Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
   		db, err := p.Database(ctx, nil)
   		if err != nil {
   			return nil, err
   		}
   		mux := http.NewServeMux()
   		// ... the endpoints switchyard.yaml lists under services.%[2]s.simulate ...
   		return &platform.Component{Handler: mux, Checks: map[string]server.Check{"database": db.PingContext}}, nil
   	}}
   }
   `+"```"+`

2. Add it to `+"`Services`"+` in `+"`main.go`"+`.
3. Delete `+"`services.%[2]s.simulate`"+` from `+"`switchyard.yaml`"+`: the file says what runs.
4. `+"`go run . up`, `go run . load`, `go run . verify`"+`: the traffic must still be exactly what
   the file declares.
`, goName(first), first)
	return b.String()
}
