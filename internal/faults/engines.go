package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/testkit/faultproxy"
)

// freeAddr reserves a free loopback address and gives it back for a server to take.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// serve starts p and waits, for at most within, until it accepts connections on
// addr; one that does not is killed.
func (p *process) serve(addr string, within time.Duration) error {
	if err := p.begin(); err != nil {
		return err
	}
	if err := listening(addr, within, p); err != nil {
		p.kill()
		return err
	}
	return nil
}

// listening waits until something accepts connections on addr.
func listening(addr string, within time.Duration, p *process) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %w\n%s", p.name, p.wait(), p.tail(10))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s:\n%s", p.name, addr, within, p.tail(10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBroker starts a broker of the runner's own: the binary's embedded NATS
// server with JetStream (`broker`: every write synced), on a free loopback port,
// storing in dir, behind a random token.
func (r *Runner) startBroker(dir string) (*process, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	token := hex.EncodeToString(secret)
	p := &process{r: r, name: "broker", bin: r.Binary, env: r.Env,
		args: []string{"broker", "--listen", addr, "--store", dir, "--token", token, "--sync", "always"}}
	if err := p.serve(addr, 20*time.Second); err != nil {
		return nil, "", err
	}
	return p, "nats://" + token + "@" + addr, nil
}

// startRedis starts a redis-server of the runner's own on a free loopback port,
// keeping nothing on disk (a killed one comes back empty, as a cache would).
func (r *Runner) startRedis(dir string) (*process, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", errors.New("redis: private needs redis-server on PATH (Debian: apt-get install redis-server)")
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	p := &process{r: r, name: "redis", bin: bin, dir: dir,
		args: []string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir}}
	if err := p.serve(addr, 10*time.Second); err != nil {
		return nil, "", err
	}
	return p, "redis://" + addr + "/0", nil
}

// postgresBin finds a PostgreSQL server program: on PATH, else in Debian's
// /usr/lib/postgresql/<version>/bin, the newest version first.
func postgresBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name), nil
		}
	}
	return "", fmt.Errorf("database: private needs PostgreSQL's %s (Debian: apt-get install postgresql)", name)
}

// serverUser is who the PostgreSQL server runs as: the running user, or — since
// PostgreSQL refuses to run as root — the postgres system user when that is root.
func serverUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("database: private run as root needs a postgres user to run the server as (PostgreSQL refuses root)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres makes a PostgreSQL cluster in dir with initdb (trust
// authentication, loopback only, no Unix socket) and starts its server on a free
// port. It returns the server's process — started in a process group of its
// own, so that a fault reaches every backend — and the URL of its postgres
// database.
func (r *Runner) startPostgres(dir string) (*process, string, error) {
	initdb, err := postgresBin("initdb")
	if err != nil {
		return nil, "", err
	}
	server, err := postgresBin("postgres")
	if err != nil {
		return nil, "", err
	}
	cred, err := serverUser()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, "", err
		}
	}
	init := exec.Command(initdb, "-D", dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	init.SysProcAttr, init.Dir = &syscall.SysProcAttr{Credential: cred}, dir
	init.Env = append(slices.Clone(r.Env), "LC_ALL=C")
	if out, err := init.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	// fsync off: a fault kills processes, never the machine, and the kernel keeps
	// what was written; the run is faster for it.
	p := &process{r: r, name: "postgres", bin: server, dir: dir, cred: cred, group: true, env: []string{"LC_ALL=C"},
		args: []string{"-D", dir, "-p", port, "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "fsync=off", "-c", "max_connections=300", "-c", "shared_buffers=64MB"}}
	if err := p.serve(addr, 30*time.Second); err != nil {
		return nil, "", err
	}
	return p, "postgres://postgres@" + addr + "/switchyard?sslmode=disable", nil
}

// restartPostgres starts the killed server again on its directory. The backends
// of the killed one may hold its shared memory for a moment after the
// postmaster died; the new server refuses to start until they are gone, so it is
// tried again for up to 15 s.
func (p *process) restartPostgres(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := p.serve(addr, 10*time.Second)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// engines are the servers and proxies a run owns.
type engines struct {
	broker, database, redis          *process
	brokerURL, databaseURL, redisURL string
	databaseDir                      string                       // removed once the server is gone
	proxies                          map[string]*faultproxy.Proxy // by edge, "caller -> callee"
	reserved                         map[string]string            // a service edge's proxy address, before the stack runs
}

func (e *engines) close() {
	for _, p := range e.proxies {
		p.Close()
	}
	if e.broker != nil {
		e.broker.kill()
	}
	if e.database != nil {
		e.database.kill()
	}
	if e.redis != nil {
		e.redis.kill()
	}
	if e.databaseDir != "" {
		_ = os.RemoveAll(e.databaseDir)
	}
}

// natsURL is the stack's NATS broker: the runner's own, or the one stack.json
// names; "" when the stack has none (Kafka, say).
func (e *engines) natsURL(data string) string {
	if e.brokerURL != "" {
		return e.brokerURL
	}
	st, err := readStackFile(data)
	if err != nil || !strings.HasPrefix(st.Broker.URL, "nats://") {
		return ""
	}
	return st.Broker.URL
}

// hostOf is a URL's host:port.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// edgeKey is an edge written one way, "caller -> callee".
func edgeKey(f Fault) string {
	caller, callee := f.Ends()
	return caller + " -> " + callee
}

// interpose starts a proxy on every edge to the broker or the database the
// schedule breaks, and points the caller at it through its environment; it
// reserves an address for each edge to a service, pointing the caller there,
// and returns those edges: their proxies start once the stack runs.
func (e *engines) interpose(schedule []Fault, env *[]string) ([]Fault, error) {
	e.proxies, e.reserved = map[string]*faultproxy.Proxy{}, map[string]string{}
	var later []Fault
	for _, f := range schedule {
		key := edgeKey(f)
		if f.Edge == "" || e.proxies[key] != nil || e.reserved[key] != "" {
			continue
		}
		caller, callee := f.Ends()
		engine, ok := map[string]struct{ url, variable string }{
			"broker": {e.brokerURL, "_NATS_URL"}, "redis": {e.redisURL, "_REDIS_URL"}, "database": {e.databaseURL, "_DATABASE_URL"},
		}[callee]
		if !ok { // a service: its address is known once the stack runs
			addr, err := freeAddr()
			if err != nil {
				return nil, err
			}
			e.reserved[key] = addr
			*env = append(*env, config.EnvName(caller)+"_TO_"+config.EnvName(callee)+"_ADDRESS="+addr)
			later = append(later, f)
			continue
		}
		p, err := faultproxy.Start("127.0.0.1:0", hostOf(engine.url))
		if err != nil {
			return nil, err
		}
		e.proxies[key] = p
		through := strings.Replace(engine.url, hostOf(engine.url), p.Addr(), 1)
		if callee == "database" {
			through = config.PerServiceDatabase(through, caller) // the caller's own database on the server
		}
		*env = append(*env, config.EnvName(caller)+engine.variable+"="+through)
	}
	return later, nil
}

// proxyService starts the proxy of an edge to a service, on the address reserved
// for it, to the callee's first instance.
func (e *engines) proxyService(data string, f Fault) error {
	key := edgeKey(f)
	_, callee := f.Ends()
	procs, err := stackOf(data)
	if err != nil {
		return err
	}
	for _, p := range procs {
		if p.Name != callee || p.URL == "" {
			continue
		}
		proxy, err := faultproxy.Start(e.reserved[key], hostOf(p.URL))
		if err != nil {
			return err
		}
		e.proxies[key] = proxy
		return nil
	}
	return fmt.Errorf("edge %s: no running %s in the stack to put the proxy before", key, callee)
}

// breakEdge breaks an edge's proxy the fault's way for its duration, then heals it.
func (e *engines) breakEdge(ctx context.Context, f Fault) error {
	p := e.proxies[edgeKey(f)]
	if p == nil {
		return fmt.Errorf("edge %s has no proxy", edgeKey(f))
	}
	var err error
	switch f.edgeKind() {
	case "latency":
		err = p.Jitter(f.Latency.Std(), f.Jitter.Std())
	case "bandwidth":
		err = p.Bandwidth(f.Bandwidth)
	case "reset":
		err = p.Reset()
	case "blackhole":
		err = p.BlackHole()
	case "down":
		err = p.Down()
	}
	if err != nil {
		return err
	}
	sleep(ctx, f.Lasts())
	return p.Heal()
}
