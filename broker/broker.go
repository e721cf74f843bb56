// Package broker runs an embedded NATS server with JetStream — nats-server used as a
// library — for the local stack and for tests. Production uses an external NATS
// cluster (or Kafka); nothing here is a home-made broker.
//
// Defaults favour safety over speed: file storage that fsyncs every write (JetStream
// on its own syncs every two minutes and can lose acknowledged messages on power
// loss), loopback only, token authentication, and never port 4222, which belongs to
// any NATS server the user already runs.
package broker

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures an embedded server.
type Config struct {
	// Listen is the client address, host:port [127.0.0.1:0, any free port]. 4222 is
	// refused.
	Listen string
	// StoreDir holds JetStream's files. Required.
	StoreDir string
	// SyncInterval between fsyncs; 0 means fsync every write (the default).
	SyncInterval time.Duration
	// Token clients must present; empty means a random one is generated. The URL
	// reported by URL carries it.
	Token string
	// Name of the server, for logs and cluster routes [switchyard].
	Name string
	// MaxStore caps JetStream file storage in bytes [10 GiB].
	MaxStore int64
	// Cluster, when set, makes the server one node of a JetStream cluster.
	Cluster *Cluster
	// Logger receives the server's notices and errors. Nil means silent.
	Logger *slog.Logger
}

// Cluster makes a server a node of a cluster: every node has the same Name, listens
// for routes on its own Listen, and lists the others' route addresses in Routes.
type Cluster struct {
	Name   string
	Listen string   // host:port
	Routes []string // host:port of the other nodes
}

// Broker is a running embedded NATS server.
type Broker struct {
	srv   *server.Server
	name  string
	url   string
	token string
}

// Start starts the server and waits until it accepts clients.
func Start(cfg Config) (*Broker, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("broker: StoreDir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %q: bad port", cfg.Listen)
	}
	if port == 4222 {
		return nil, errors.New("broker: port 4222 is left to a NATS server you may run yourself; pick another")
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if cfg.Token == "" {
		cfg.Token = rand.Text()
	}
	if cfg.Name == "" {
		cfg.Name = "switchyard"
	}
	if cfg.MaxStore == 0 {
		cfg.MaxStore = 10 << 30
	}
	opts := &server.Options{
		ServerName:        cfg.Name,
		Host:              host,
		Port:              port,
		JetStream:         true,
		StoreDir:          cfg.StoreDir,
		SyncAlways:        cfg.SyncInterval == 0,
		SyncInterval:      cfg.SyncInterval,
		JetStreamMaxStore: cfg.MaxStore,
		Authorization:     cfg.Token,
		NoSigs:            true,
		MaxPayload:        1 << 20,
	}
	if c := cfg.Cluster; c != nil {
		chost, cport, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("broker: cluster listen %q: %w", c.Listen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: chost}
		if opts.Cluster.Port, err = strconv.Atoi(cport); err != nil {
			return nil, fmt.Errorf("broker: cluster listen %q: bad port", c.Listen)
		}
		for _, r := range c.Routes {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(slogAdapter{cfg.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("broker: not ready to accept clients on %s within 10s", cfg.Listen)
	}
	addr := srv.Addr().(*net.TCPAddr)
	u := url.URL{Scheme: "nats", User: url.User(cfg.Token), Host: net.JoinHostPort(host, strconv.Itoa(addr.Port))}
	return &Broker{srv: srv, name: cfg.Name, url: u.String(), token: cfg.Token}, nil
}

// URL is the client URL, token included: nats://<token>@host:port. Treat it as a
// secret.
func (b *Broker) URL() string { return b.url }

// Name is the server's name, as a JetStream cluster reports its leaders.
func (b *Broker) Name() string { return b.name }

// Addr is the client address, host:port, without credentials.
func (b *Broker) Addr() string { return b.srv.Addr().String() }

// Shutdown stops the server and waits for it to finish.
func (b *Broker) Shutdown() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// slogAdapter sends the server's log to slog. Notices (the start-up banner, routine
// state) are debug; warnings and errors keep their level.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.log.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.log.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.log.Debug(fmt.Sprintf(format, v...)) }
