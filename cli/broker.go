package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/telemetry"
)

// cmdBroker runs the broker `up` embeds — NATS JetStream, from the nats-server
// library — on its own, in the foreground: for several `serve` processes on one
// machine, or as a node of a small cluster on loopback, and for tests that must
// kill it.
func cmdBroker(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("broker")
	configPath := ConfigFlag(fs)
	listen := fs.String("listen", "127.0.0.1:0", "client `host:port` (4222 is left to a NATS server you may run)")
	store := fs.String("store", "", "`directory` of JetStream's files (default <data dir>/nats-broker)")
	token := fs.String("token", "", "`token` clients must present (default: a random one, shown in the URL printed)")
	sync := fs.String("sync", "always", "fsync every write (always) or every interval such as `1s`")
	name := fs.String("name", "switchyard", "server `name` (in a cluster, each node's own)")
	cluster := fs.String("cluster", "", "cluster `name`: make this server one node of a JetStream cluster")
	clusterListen := fs.String("cluster-listen", "", "`host:port` this node listens on for its cluster routes")
	routes := fs.String("routes", "", "comma-separated `host:port` route addresses of the other nodes")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("broker takes no arguments")
	}
	var interval time.Duration
	if *sync != "always" {
		d, err := time.ParseDuration(*sync)
		if err != nil || d <= 0 {
			return Usagef("--sync: want always or a positive duration such as 1s, got %q", *sync)
		}
		interval = d
	}
	bc := broker.Config{Listen: *listen, StoreDir: *store, Token: *token, SyncInterval: interval, Name: *name}
	if *cluster != "" {
		if *clusterListen == "" || *routes == "" {
			return Usagef("--cluster needs --cluster-listen and --routes")
		}
		bc.Cluster = &broker.Cluster{Name: *cluster, Listen: *clusterListen, Routes: strings.Split(*routes, ",")}
	}
	if bc.StoreDir == "" {
		cfg, _, err := e.LoadConfig(*configPath)
		if err != nil {
			return err
		}
		bc.StoreDir = filepath.Join(cfg.DataDir, "nats-broker")
	}
	log := telemetry.NewLogger(e.Stderr, telemetry.LogConfig{Service: "broker", Text: isTerminal(e.Stderr)})
	bc.Logger = log
	b, err := broker.Start(bc)
	if err != nil {
		return err
	}
	defer b.Shutdown()
	fmt.Fprintf(e.Stdout, "broker ready: %s\n", b.URL())
	<-ctx.Done()
	return nil
}
