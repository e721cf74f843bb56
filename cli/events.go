package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/kafkabus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/platform"
)

const eventsUsage = `events dlq list [--group g] [--limit n] [--json]
       switchyard events dlq show <id>
       switchyard events dlq replay <id> | --all [--group g]
       switchyard events dlq purge <id> | --all [--group g]
       switchyard events tail <pattern> [--data]      e.g. inventory.stock.>  orders.*`

// operatorBus is what the operator commands need of a bus.
type operatorBus interface {
	bus.DeadLetters
	Tail(ctx context.Context, domain, pattern string, fn func(subject string, e event.Event, raw []byte)) error
}

// openOperatorBus connects to the configured broker, or to the running local
// stack's (stack.json) when the configuration names none.
func openOperatorBus(e *Env, cfg *config.Config) (operatorBus, func(), error) {
	reg, err := event.NewRegistry(e.Events(cfg))
	if err != nil {
		return nil, nil, err
	}
	url := cfg.Broker.URL
	if url == "" && cfg.Broker.Kind == "nats" {
		st, err := readStack(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		url = st.Broker.URL
	}
	switch cfg.Broker.Kind {
	case "kafka":
		b, err := kafkabus.New(kafkabus.Config{Seeds: strings.Split(url, ","), Registry: reg})
		if err != nil {
			return nil, nil, err
		}
		return b, b.Close, nil
	default:
		nc, err := nats.Connect(url, nats.Name("switchyard-cli"), nats.Timeout(5*time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS %s: %w", platform.RedactURL(url), err)
		}
		b, err := natsbus.New(nc, natsbus.Config{Registry: reg})
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return b, nc.Close, nil
	}
}

// readStack reads the stack.json of the stack running in dataDir.
func readStack(dataDir string) (*stackFile, error) {
	path := filepath.Join(dataDir, "stack.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no running stack: %s does not exist (start one with switchyard up, or set NATS_URL)", path)
	}
	if err != nil {
		return nil, err
	}
	var s stackFile
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.Path = path
	return &s, nil
}

func cmdEvents(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(e.Stdout, "Usage: switchyard %s\n", eventsUsage)
		if len(args) == 0 {
			return Usagef("events needs a subcommand: dlq or tail")
		}
		return nil
	}
	switch args[0] {
	case "dlq":
		return cmdDLQ(ctx, e, args[1:])
	case "tail":
		return cmdTail(ctx, e, args[1:])
	default:
		return Usagef("events: no subcommand %q (dlq, tail)", args[0])
	}
}

func cmdDLQ(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 {
		return Usagef("events dlq needs list, show, replay or purge")
	}
	verb, args := args[0], args[1:]
	fs := e.Flags("events")
	configPath := ConfigFlag(fs)
	group := fs.String("group", "", "only the dead letters of this consumer `group`")
	limit := fs.Int("limit", 100, "list at most `N` dead letters")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "replay or purge every dead letter (of --group, when given)")
	id := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	b, closeBus, err := openOperatorBus(e, cfg)
	if err != nil {
		return err
	}
	defer closeBus()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	switch verb {
	case "list":
		list, err := b.List(ctx, *group, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.Stdout).Encode(list)
		}
		if len(list) == 0 {
			fmt.Fprintln(e.Stdout, "no dead letters")
			return nil
		}
		w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tGROUP\tTYPE\tEVENT\tATTEMPTS\tLAST FAILURE\tERROR")
		for _, dl := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", dl.ID, dl.Group, dl.Event.Type, dl.Event.ID, dl.Attempts,
				dl.LastFailure.Local().Format(time.DateTime), oneLine(dl.LastError, 60))
		}
		return w.Flush()
	case "show":
		if id == "" {
			return Usagef("events dlq show needs a dead letter id (see events dlq list)")
		}
		dl, err := b.Get(ctx, id)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(e.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(dl)
	case "replay", "purge":
		var ids []string
		switch {
		case id != "" && !*all:
			ids = []string{id}
		case id == "" && *all:
			if verb == "purge" {
				n, err := b.Purge(ctx, *group, "")
				if err == nil {
					fmt.Fprintf(e.Stdout, "purged %d dead letters\n", n)
				}
				return err
			}
			list, err := b.List(ctx, *group, 1<<20)
			if err != nil {
				return err
			}
			for _, dl := range list {
				ids = append(ids, dl.ID)
			}
		default:
			return Usagef("events dlq %s needs one dead letter id, or --all", verb)
		}
		for _, id := range ids {
			if verb == "replay" {
				err = b.Replay(ctx, id)
			} else {
				_, err = b.Purge(ctx, "", id)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "%sed %s\n", strings.TrimSuffix(verb, "e"), id)
		}
		return nil
	default:
		return Usagef("events dlq: no subcommand %q (list, show, replay, purge)", verb)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func cmdTail(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("events")
	configPath := ConfigFlag(fs)
	data := fs.Bool("data", false, "print each event's data")
	pattern := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pattern, args = args[0], args[1:]
	}
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	domain, _, _ := strings.Cut(pattern, ".")
	if pattern == "" || domain == "" || strings.ContainsAny(domain, "*>") {
		return Usagef("events tail needs a pattern starting with a domain, e.g. inventory.stock.> or orders.*")
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	b, closeBus, err := openOperatorBus(e, cfg)
	if err != nil {
		return err
	}
	defer closeBus()
	filter := "events." + pattern
	if cfg.Broker.Kind == "kafka" {
		filter = strings.TrimRight(pattern, ".*>") // Kafka: a type prefix
	}
	fmt.Fprintf(e.Stderr, "tailing %s (Ctrl-C to stop)\n", pattern)
	return b.Tail(ctx, domain, filter, func(subject string, ev event.Event, raw []byte) {
		fmt.Fprintf(e.Stdout, "%s  %-32s %-24s %s\n", ev.Time.Local().Format("15:04:05.000"), ev.Type, ev.Subject, ev.ID)
		if *data {
			fmt.Fprintf(e.Stdout, "    %s\n", ev.Data)
		}
	})
}
