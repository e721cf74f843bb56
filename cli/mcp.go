package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/assistant"
)

const mcpUsage = `mcp [--config path] [--http 127.0.0.1:PORT] [--admin-token-file file]`

// EnvAdminToken holds an administrator's bearer token for the MCP server's
// operations (replaying a dead letter), when --admin-token-file does not.
const EnvAdminToken = "SWITCHYARD_ADMIN_TOKEN"

// cmdMCP serves the system to an assistant over the Model Context Protocol: on
// stdio (what an MCP client launches), or streamable HTTP on a loopback address.
func cmdMCP(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("mcp")
	configPath := ConfigFlag(fs)
	addr := fs.String("http", "", "serve streamable HTTP on this loopback `host:port` instead of stdio")
	tokenFile := fs.String("admin-token-file", "", "read an administrator's bearer token from this `file`, for replays ("+EnvAdminToken+" otherwise)")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("mcp takes no arguments, got %q", fs.Arg(0))
	}
	cfg, source, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(e.Getenv(EnvAdminToken))
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return Usagef("--admin-token-file: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	srv := assistant.New(e.assistantOptions(cfg, source, token))
	if *addr == "" {
		if e.Input == nil {
			return Usagef("mcp on stdio needs the process's standard input; use --http")
		}
		err := srv.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(e.Input), Writer: nopCloser{e.Stdout}})
		if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
		return Usagef("--http %q: serve on a loopback address such as 127.0.0.1:7777 — the server reads and changes the system", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil),
		ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
	fmt.Fprintf(e.Stderr, "mcp: streamable HTTP on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// assistantOptions wires the MCP server to this binary's view of the system: the
// file (read anew on every call), its analysis and design document, the running
// stack's hub and gateway, and the broker's dead letters.
func (e *Env) assistantOptions(cfg *config.Config, source, token string) assistant.Options {
	dir := filepath.Dir(source)
	if source == "" {
		dir = "."
	}
	o := assistant.Options{
		Version:    version(),
		Source:     filepath.Base(cmp.Or(source, "switchyard.yaml")),
		Raw:        func() ([]byte, error) { return e.configRaw(source) },
		Load:       func(raw []byte) (*config.Config, error) { return e.LoadConfigText(cfg.Source, dir, raw) },
		Analyse:    e.analyse,
		AdminToken: token,
		Sagas:      e.sagas,
		Design:     e.render,
		Stack: func() (string, string, error) {
			st, err := readStack(cfg.DataDir)
			if err != nil {
				return "", "", err
			}
			gateway := ""
			for _, s := range st.Services {
				if s.Name == config.GatewayName {
					gateway = s.URL
				}
			}
			return st.Hub, gateway, nil
		},
		DeadLetters: func(_ context.Context, c *config.Config) (bus.DeadLetters, func(), error) {
			b, closeFn, err := openOperatorBus(e, c)
			return b, closeFn, err
		},
	}
	if source != "" {
		o.Write = func(raw []byte) error {
			info, err := os.Stat(source)
			if err != nil {
				return err
			}
			return os.WriteFile(source, raw, info.Mode().Perm())
		}
	}
	return o
}

func version() string {
	mod, _ := switchyard.Version()
	return mod
}
