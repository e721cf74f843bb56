package config

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	headerName  = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	// EventType is the form of an event type: <domain>.<entity>.<past-tense verb>.v<N>.
	EventType = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.v[1-9][0-9]*$`)
)

// validate returns every problem of c with its dotted key path; Load places them.
func (c *Config) validate() Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if c.Version != 1 {
		bad("version", "want 1, got %d", c.Version)
	}
	switch c.Broker.Kind {
	case "nats":
		if c.Broker.URL != "" {
			if err := checkNATSURL(c.Broker.URL); err != nil {
				bad("broker.url", "%v", err)
			}
		}
	case "kafka":
		if c.Broker.URL == "" {
			bad("broker.url", "kafka needs the seed brokers, host:port[,host:port]")
		}
	default:
		bad("broker.kind", "want nats or kafka, got %q", c.Broker.Kind)
	}
	if _, port, err := splitHostPort(c.Broker.Embedded.Listen); err != nil {
		bad("broker.embedded.listen", "%v", err)
	} else if port == 4222 {
		bad("broker.embedded.listen", "port 4222 is left to a NATS server you may run yourself; pick another (0 = any free port)")
	}
	if r := c.Broker.Replicas; r < 0 || r > 5 {
		bad("broker.replicas", "want 1 to 5 (JetStream keeps at most five copies), got %d", r)
	}
	if s := c.Broker.Embedded.Sync; s != "always" {
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			bad("broker.embedded.sync", "want \"always\" or a positive duration, got %q", s)
		}
	}
	if c.Redis.URL != "" {
		if err := checkURL(c.Redis.URL, "redis", "rediss"); err != nil {
			bad("redis.url", "%v", err)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Telemetry.LogLevel) {
		bad("telemetry.log_level", "want debug, info, warn or error, got %q", c.Telemetry.LogLevel)
	}
	if c.Telemetry.OTLPEndpoint != "" {
		if err := checkURL(c.Telemetry.OTLPEndpoint, "http", "https"); err != nil {
			bad("telemetry.otlp_endpoint", "%v", err)
		}
	}
	if _, _, err := splitHostPort(c.Telemetry.Hub); err != nil {
		bad("telemetry.hub", "%v", err)
	}
	if r := c.Telemetry.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		bad("telemetry.sample_ratio", "want a number from 0 to 1, got %v", *r)
	}

	switch c.Discovery.Kind {
	case "nats":
		if c.Broker.Kind != "nats" {
			bad("discovery.kind", "nats discovery needs the nats broker; use static or dns with kafka")
		}
	case "static", "dns":
	default:
		bad("discovery.kind", "want nats, static or dns, got %q", c.Discovery.Kind)
	}
	if c.Discovery.Heartbeat.Std() < 100*time.Millisecond {
		bad("discovery.heartbeat", "at least 100ms, got %s", c.Discovery.Heartbeat)
	}
	if !strings.Contains(c.Discovery.DNS.Name, "%s") {
		bad("discovery.dns.name", "must contain %%s for the service name, got %q", c.Discovery.DNS.Name)
	}

	if len(c.Services) == 0 {
		bad("services", "declare at least one service")
	}
	listens := map[string]string{}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		key := "services." + name
		if !serviceName.MatchString(name) {
			bad(key, "a service name is lower-case letters, digits and dashes, starting with a letter, at most 31 characters")
		}
		if s.Listen == "" {
			bad(key, "listen is required (host:port; port 0 picks a free one)")
		} else if _, port, err := splitHostPort(s.Listen); err != nil {
			bad(key+".listen", "%v", err)
		} else if port != 0 {
			if other, dup := listens[s.Listen]; dup {
				bad(key+".listen", "%s is also the address of %s", s.Listen, other)
			}
			listens[s.Listen] = name
		}
		if s.Database != "" {
			if err := checkDatabaseURL(s.Database); err != nil {
				bad(key+".database", "%v", err)
			}
		}
		for _, dep := range sortedKeys(s.Dependencies) {
			d := s.Dependencies[dep]
			dkey := key + ".dependencies." + dep
			if _, ok := c.Services[dep]; !ok {
				bad(dkey, "no service %q is declared", dep)
			} else if dep == name {
				bad(dkey, "a service cannot depend on itself")
			}
			if d == nil {
				bad(dkey, "protocol is required (rest or grpc)")
				continue
			}
			if d.Protocol != "rest" && d.Protocol != "grpc" {
				bad(dkey+".protocol", "want rest or grpc, got %q", d.Protocol)
			}
			errs = append(errs, d.validateAddress(dkey+".address")...)
			errs = append(errs, d.Policy.validate(dkey+".policy")...)
		}
		for i, t := range s.Publishes {
			if !EventType.MatchString(t) {
				bad(fmt.Sprintf("%s.publishes.%d", key, i), "%q is not an event type <domain>.<entity>.<past-tense verb>.v<N>", t)
			}
		}
		for i, t := range s.Subscriptions {
			skey := fmt.Sprintf("%s.subscriptions.%d", key, i)
			if !EventType.MatchString(t) {
				bad(skey, "%q is not an event type <domain>.<entity>.<past-tense verb>.v<N>", t)
			} else if !c.published(t) {
				bad(skey, "no service publishes %q", t)
			}
		}
	}
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		if s.Replicas < 1 || s.Replicas > 10 {
			bad("services."+name+".replicas", "want 1 to 10, got %d", s.Replicas)
		}
		if s.Simulate != nil {
			errs = append(errs, c.validateSimulate(s)...)
		}
	}
	if c.Load != nil {
		errs = append(errs, c.validateLoad(c.Load)...)
	}
	if cycle := c.dependencyCycle(); cycle != nil {
		bad("services."+cycle[0]+".dependencies."+cycle[1], "synchronous dependency cycle: %s", strings.Join(cycle, " → "))
	}

	errs = append(errs, c.validateSecurity()...)
	errs = append(errs, c.Security.TLS.validate()...)
	if g := c.Gateway; g != nil {
		errs = append(errs, c.validateGateway(g)...)
	}
	return errs
}

func (p Policy) validate(key string) Errors {
	var errs Errors
	bad := func(k, format string, args ...any) {
		errs = append(errs, &Error{Key: key + "." + k, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Timeout != 0 && p.TryTimeout > p.Timeout {
		bad("try_timeout", "%s is longer than the overall timeout %s", p.TryTimeout, p.Timeout)
	}
	if p.Retry.MaxAttempts < 0 || p.Retry.MaxAttempts > 10 {
		bad("retry.max_attempts", "want 1 to 10, got %d", p.Retry.MaxAttempts)
	}
	if p.Retry.MaxBackoff != 0 && p.Retry.Backoff > p.Retry.MaxBackoff {
		bad("retry.backoff", "%s is longer than max_backoff %s", p.Retry.Backoff, p.Retry.MaxBackoff)
	}
	if p.Retry.BudgetRatio < 0 || p.Retry.BudgetRatio > 1 {
		bad("retry.budget_ratio", "want 0 to 1, got %v", p.Retry.BudgetRatio)
	}
	if p.Retry.BudgetPerSecond < 0 {
		bad("retry.budget_per_second", "must not be negative")
	}
	if p.Breaker.FailureRatio < 0 || p.Breaker.FailureRatio > 1 {
		bad("breaker.failure_ratio", "want 0 to 1, got %v", p.Breaker.FailureRatio)
	}
	if p.Breaker.MinCalls < 0 || p.Breaker.ConsecutiveFailures < 0 || p.Breaker.HalfOpenProbes < 0 {
		bad("breaker", "counts must not be negative")
	}
	if p.Breaker.Disabled && (p.Breaker.FailureRatio > 0 || p.Breaker.MinCalls > 0 || p.Breaker.ConsecutiveFailures > 0 || p.Breaker.Window > 0 || p.Breaker.OpenFor > 0 || p.Breaker.HalfOpenProbes > 0) {
		bad("breaker.disabled", "a disabled breaker takes no other setting; drop them or the flag")
	}
	if p.Breaker.ConsecutiveFailures > 0 && (p.Breaker.FailureRatio > 0 || p.Breaker.MinCalls > 0 || p.Breaker.Window > 0) {
		bad("breaker.consecutive_failures", "the breaker opens on consecutive failures or on a failure ratio, not both; drop one")
	}
	if p.Hedge.Max < 0 || p.Hedge.Max > 3 {
		bad("hedge.max", "want 1 to 3, got %d", p.Hedge.Max)
	}
	if p.Bulkhead.MaxConcurrent < 0 {
		bad("bulkhead.max_concurrent", "must not be negative")
	}
	return errs
}

// published reports whether some service declares it publishes eventType.
func (c *Config) published(eventType string) bool {
	for _, s := range c.Services {
		if slices.Contains(s.Publishes, eventType) {
			return true
		}
	}
	return false
}

// dependencyCycle returns one cycle of synchronous dependencies, first node repeated
// at the end, or nil.
func (c *Config) dependencyCycle() []string {
	const (
		unseen = iota
		active
		finished
	)
	state := map[string]int{}
	var stack []string
	var found []string
	var visit func(string) bool
	visit = func(n string) bool {
		state[n] = active
		stack = append(stack, n)
		s := c.Services[n]
		if s != nil {
			for _, d := range sortedKeys(s.Dependencies) {
				if _, ok := c.Services[d]; !ok || d == n {
					continue
				}
				switch state[d] {
				case active:
					i := slices.Index(stack, d)
					found = append(slices.Clone(stack[i:]), d)
					return true
				case unseen:
					if visit(d) {
						return true
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = finished
		return false
	}
	for _, n := range sortedKeys(c.Services) {
		if state[n] == unseen && visit(n) {
			return found
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	return u, nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("want a %s:// URL, got %q", strings.Join(schemes, ":// or "), u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", u.Redacted())
	}
	return nil
}

func checkNATSURL(raw string) error {
	for _, part := range strings.Split(raw, ",") {
		if err := checkURL(strings.TrimSpace(part), "nats", "tls"); err != nil {
			return err
		}
	}
	return nil
}

func checkDatabaseURL(raw string) error {
	switch {
	case strings.HasPrefix(raw, "sqlite:"):
		if strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//") == "" {
			return fmt.Errorf("sqlite URL has no path")
		}
		return nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return checkURL(raw, "postgres", "postgresql")
	default:
		return fmt.Errorf("want sqlite:<path> or postgres://user@host:port/db, got %q", redactRaw(raw))
	}
}

// redactRaw hides the password of something that may be a URL, for messages.
func redactRaw(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}

// issuerAlgorithms are the algorithms an issuer may be trusted with (authn's).
var issuerAlgorithms = []string{"EdDSA", "ES256", "RS256"}

func (c *Config) validateSecurity() Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	names, isses := map[string]int{}, map[string]int{}
	for i, is := range c.Security.Issuers {
		key := fmt.Sprintf("security.issuers.%d", i)
		if !serviceName.MatchString(is.Name) {
			bad(key+".name", "want lower-case letters, digits and dashes, got %q", is.Name)
		} else if j, dup := names[is.Name]; dup {
			bad(key+".name", "%q is also the name of issuer %d", is.Name, j)
		}
		names[is.Name] = i
		if is.Issuer == "" {
			bad(key+".issuer", "the iss its tokens carry is required")
		} else if j, dup := isses[is.Issuer]; dup {
			bad(key+".issuer", "%q is also the iss of issuer %d", is.Issuer, j)
		}
		isses[is.Issuer] = i
		if is.Audience == "" {
			bad(key+".audience", "the aud its tokens must carry for this platform is required")
		}
		sources := 0
		for _, s := range []string{is.Service, is.Discovery, is.JWKS} {
			if s != "" {
				sources++
			}
		}
		if sources != 1 {
			bad(key, "exactly one of service, discovery and jwks says where its keys are")
		}
		if is.Service != "" {
			if _, ok := c.Services[is.Service]; !ok {
				bad(key+".service", "no service %q is declared", is.Service)
			}
		}
		if is.Discovery != "" {
			if err := checkURL(is.Discovery, "http", "https"); err != nil {
				bad(key+".discovery", "%v", err)
			}
		}
		if is.JWKS != "" {
			if err := checkURL(is.JWKS, "http", "https"); err != nil {
				bad(key+".jwks", "%v", err)
			}
		}
		for j, a := range is.Algorithms {
			if !slices.Contains(issuerAlgorithms, a) {
				bad(fmt.Sprintf("%s.algorithms.%d", key, j), "want one of %s, got %q", strings.Join(issuerAlgorithms, ", "), a)
			}
		}
		for j, t := range is.TokenTypes {
			if t == "" {
				bad(fmt.Sprintf("%s.token_types.%d", key, j), "an empty token type")
			}
		}
	}
	return errs
}

func (c *Config) validateGateway(g *Gateway) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if _, _, err := splitHostPort(g.Listen); err != nil {
		bad("gateway.listen", "%v", err)
	}
	errs = append(errs, g.Policy.validate("gateway.policy")...)
	for _, dep := range sortedKeys(g.Dependencies) {
		d, key := g.Dependencies[dep], "gateway.dependencies."+dep
		if _, ok := c.Services[dep]; !ok {
			bad(key, "no service %q is declared", dep)
		}
		if d == nil || d.Protocol != "rest" && d.Protocol != "grpc" {
			bad(key+".protocol", "want rest or grpc")
			continue
		}
		errs = append(errs, d.validateAddress(key+".address")...)
		errs = append(errs, d.Policy.validate(key+".policy")...)
	}
	if g.MaxBodyBytes < 0 {
		bad("gateway.max_body_bytes", "must not be negative")
	}
	for i, o := range g.CORS.AllowedOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/") {
			bad(fmt.Sprintf("gateway.cors.allowed_origins.%d", i), "an origin is scheme://host[:port] with no path, or *; got %q", o)
		}
	}
	if sh := g.Shedding; sh.MaxLimit > 0 && (sh.MinLimit > sh.MaxLimit || sh.InitialLimit > sh.MaxLimit) {
		bad("gateway.shedding", "min_limit and initial_limit must not exceed max_limit %d", sh.MaxLimit)
	}
	seen := map[string]int{}
	for i, r := range g.Routes {
		key := fmt.Sprintf("gateway.routes.%d", i)
		if !strings.HasPrefix(r.Prefix, "/") {
			bad(key+".prefix", "a route prefix starts with \"/\", got %q", r.Prefix)
		} else if j, dup := seen[r.Prefix]; dup {
			bad(key+".prefix", "%q is also the prefix of route %d", r.Prefix, j)
		}
		seen[r.Prefix] = i
		if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
			bad(key+".path", "an upstream path starts with \"/\", got %q", r.Path)
		}
		switch {
		case r.Service == "" && r.Upstream == "":
			bad(key, "service or upstream is required")
		case r.Service != "" && r.Upstream != "":
			bad(key+".upstream", "a route goes to a service or to an upstream URL, not both")
		case r.Service != "":
			if _, ok := c.Services[r.Service]; !ok {
				bad(key+".service", "no service %q is declared", r.Service)
			}
		default:
			if u, err := url.Parse(r.Upstream); err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
				bad(key+".upstream", "want http://host:port, got %q", r.Upstream)
			}
		}
		if !slices.Contains([]string{"none", "optional", "required", "admin"}, r.Auth) {
			bad(key+".auth", "want none, optional, required or admin, got %q", r.Auth)
		}
		if (len(r.Scopes) > 0 || len(r.Roles) > 0 || len(r.Issuers) > 0) && r.Auth != "required" && r.Auth != "admin" {
			bad(key+".auth", "scopes, roles and issuers need auth: required (or admin), got %q", r.Auth)
		}
		for j, sc := range r.Scopes {
			if sc == "" || strings.ContainsAny(sc, " \"\\") {
				bad(fmt.Sprintf("%s.scopes.%d", key, j), "a scope is a non-empty word with no space, quote or backslash (RFC 6749 section 3.3), got %q", sc)
			}
		}
		for j, name := range r.Issuers {
			if !slices.ContainsFunc(c.Security.Issuers, func(is Issuer) bool { return is.Name == name }) {
				bad(fmt.Sprintf("%s.issuers.%d", key, j), "no issuer %q is declared under security.issuers", name)
			}
		}
		if r.MaxBodyBytes < 0 {
			bad(key+".max_body_bytes", "must not be negative")
		}
		if rl := r.RateLimit; rl != nil {
			if rl.Requests <= 0 {
				bad(key+".rate_limit.requests", "want a positive number of requests")
			}
			if rl.Burst < 0 {
				bad(key+".rate_limit.burst", "must not be negative")
			}
			if rl.Per.Std() < 0 {
				bad(key+".rate_limit.per", "must not be negative")
			}
			if rl.OnRedisError != "" && rl.OnRedisError != "open" && rl.OnRedisError != "closed" {
				bad(key+".rate_limit.on_redis_error", "want open or closed, got %q", rl.OnRedisError)
			}
		}
		if r.Objective != 0 && (r.Objective <= 0 || r.Objective >= 1 || math.IsNaN(r.Objective)) {
			bad(key+".objective", "want a share of requests above 0 and below 1 (0.999 for 99.9 %%), got %v", r.Objective)
		}
		if t := r.Transform; t != nil {
			for _, is := range t.Check(r.Prefix) {
				bad(key+".transform."+is.Key, "%s", is.Msg)
			}
			if r.Streaming && (!t.Response.Body.Empty() || t.Response.Template != nil) {
				bad(key+".transform.response", "a streaming route's answers are never whole, so their bodies cannot be transformed")
			}
		}
		if rc := r.Cache; rc != nil {
			ckey := key + ".cache"
			if r.Streaming {
				bad(ckey, "a streaming route's answers are never whole, so they cannot be cached")
			}
			if rc.MaxAge.Std() < 0 {
				bad(ckey+".max_age", "must not be negative")
			}
			if rc.StaleIfError.Std() < 0 {
				bad(ckey+".stale_if_error", "must not be negative")
			}
			if rc.Override && rc.MaxAge.Std() <= 0 {
				bad(ckey+".override", "overriding the service's Cache-Control needs a max_age")
			}
			if rc.MaxEntryBytes < 0 {
				bad(ckey+".max_entry_bytes", "must not be negative")
			}
			for j, h := range rc.Vary {
				if !headerName.MatchString(h) {
					bad(fmt.Sprintf("%s.vary.%d", ckey, j), "%q is not a header name", h)
				} else if strings.EqualFold(h, "Authorization") || strings.EqualFold(h, "Cookie") {
					bad(fmt.Sprintf("%s.vary.%d", ckey, j), "the caller is always part of the key; varying on the raw %s would keep a copy per token", h)
				}
			}
			for j, inv := range rc.Invalidate {
				ikey := fmt.Sprintf("%s.invalidate.%d", ckey, j)
				if !EventType.MatchString(inv.Event) {
					bad(ikey+".event", "%q is not an event type <domain>.<entity>.<past-tense verb>.v<N>", inv.Event)
				} else if !c.published(inv.Event) {
					bad(ikey+".event", "no service publishes %q", inv.Event)
				}
				if len(inv.Paths) == 0 {
					bad(ikey+".paths", "name the public paths the event outdates")
				}
				for k, path := range inv.Paths {
					rest := strings.ReplaceAll(path, "{subject}", "x")
					if path != r.Prefix && !strings.HasPrefix(path, strings.TrimSuffix(r.Prefix, "/")+"/") {
						bad(fmt.Sprintf("%s.paths.%d", ikey, k), "%q is not under the route's prefix %s", path, r.Prefix)
					} else if strings.ContainsAny(rest, "{}?# ") {
						bad(fmt.Sprintf("%s.paths.%d", ikey, k), "%q is a path whose only placeholder is {subject}", path)
					}
				}
				if inv.Settle != nil && inv.Settle.Std() < 0 {
					bad(ikey+".settle", "must not be negative")
				}
			}
		}
		if cn := r.Canary; cn != nil {
			if r.Service == "" {
				bad(key+".canary", "a canary splits a service's instances; this route has no service")
			}
			if cn.Version == "" {
				bad(key+".canary.version", "the canary instances' version tag is required")
			}
			if cn.Weight < 0 || cn.Weight > 100 {
				bad(key+".canary.weight", "want 0 to 100 (percent), got %v", cn.Weight)
			}
		}
	}
	return errs
}

// validateAddress checks a fixed address: host:port with a port, when set.
func (d *Dependency) validateAddress(key string) Errors {
	if d.Address == "" {
		return nil
	}
	host, port, err := splitHostPort(d.Address)
	switch {
	case err != nil:
		return Errors{{Key: key, Msg: err.Error()}}
	case host == "" || port == 0:
		return Errors{{Key: key, Msg: fmt.Sprintf("want host:port with both, got %q", d.Address)}}
	}
	return nil
}
