package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store"
)

// CheckInput is what an application's invariants are checked from: the services'
// own databases, as an auditor reads them.
type CheckInput struct {
	Config *config.Config
	// DB opens a service's database (kept open for the whole check); a service
	// that never ran has none, and DB says so.
	DB func(service string) (*store.DB, error)
	// Accepted are the ids clients were told were accepted (`--accepted`, or what
	// the application's load generator recorded).
	Accepted []string
	// Now is the time of this check; Grace how far past its deadline work may
	// still be finishing.
	Now   time.Time
	Grace time.Duration
}

// CheckResult is one invariant's outcome.
type CheckResult struct {
	Name string
	// Checked counts what was examined.
	Checked int
	// Violations describe each breach, for people.
	Violations []string
	// Note, when set, is a line printed before the results (a tally).
	Note string
}

// AcceptedFile is where an application's load generator records the ids it was
// told were accepted, and where `check` looks for them.
func AcceptedFile(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, "accepted-orders.txt")
}

// errBroken is check's finding: the report says which invariants.
var errBroken = errors.New("invariants broken")

// maxShown caps the violations listed per invariant.
const maxShown = 10

func cmdCheck(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("check")
	configPath := ConfigFlag(fs)
	wait := fs.Duration("wait", 0, "check again until every invariant holds or this long has passed, e.g. `30s`")
	accepted := fs.String("accepted", "", "`file` of ids clients were told were accepted (default: what switchyard load recorded)")
	asJSON := fs.Bool("json", false, "print the results as one JSON document: ok, and each invariant's name, count checked and violations")
	grace := fs.Duration("grace", 10*time.Second, "how far past its deadline a saga may still be finishing, e.g. `10s`")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("check takes no arguments")
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	dbs := map[string]*store.DB{}
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	in := CheckInput{Config: cfg, Grace: *grace, DB: func(service string) (*store.DB, error) {
		if db, ok := dbs[service]; ok {
			return db, nil
		}
		db, err := openExisting(ctx, cfg, service)
		if err != nil {
			return nil, err
		}
		dbs[service] = db
		return db, nil
	}}
	path := *accepted
	if path == "" {
		if _, err := os.Stat(AcceptedFile(cfg)); err == nil {
			path = AcceptedFile(cfg)
		}
	}
	if path != "" {
		if in.Accepted, err = readIDs(path); err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintf(e.Stdout, "checking %d accepted ids listed in %s\n", len(in.Accepted), path)
		}
	}
	deadline := time.Now().Add(*wait)
	for {
		in.Now = time.Now()
		results, err := e.invariants(ctx, in)
		if err != nil {
			return err
		}
		ok := true
		for _, r := range results {
			ok = ok && len(r.Violations) == 0
		}
		if ok || !time.Now().Before(deadline) {
			if *asJSON {
				if err := writeJSONReport(e.Stdout, results, ok, path, len(in.Accepted)); err != nil {
					return err
				}
			} else {
				writeReport(e.Stdout, results, ok)
			}
			if !ok {
				return errBroken
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// invariants checks the application's own invariants, then the toolkit's over
// every service's database: every outbox drained, no saga stuck or past its
// deadline.
func (e *Env) invariants(ctx context.Context, in CheckInput) ([]CheckResult, error) {
	var out []CheckResult
	if e.App.Check != nil {
		own, err := e.App.Check(ctx, in)
		if err != nil {
			return nil, err
		}
		out = append(out, own...)
	}
	drained := CheckResult{Name: "every outbox drained (nothing unpublished past the grace)"}
	sagas := CheckResult{Name: "no saga stuck, none unfinished past its deadline"}
	runsSagas := false
	for _, name := range in.Config.ServiceNames() {
		svc := in.Config.Service(name)
		if len(svc.Publishes) > 0 {
			db, err := in.DB(name)
			if err != nil {
				return nil, err
			}
			n, oldest, err := outbox.Unsent(ctx, db, in.Now.Add(-in.Grace))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			drained.Checked++
			if n > 0 {
				drained.Violations = append(drained.Violations, fmt.Sprintf("%s: %d events unpublished, the oldest written %s ago",
					name, n, in.Now.Sub(oldest).Round(time.Millisecond)))
			}
		}
		if s, ok := e.App.builder(in.Config, name); ok && s.Sagas != nil {
			runsSagas = true
			db, err := in.DB(name)
			if err != nil {
				return nil, err
			}
			examined, findings, err := saga.Audit(ctx, db, in.Now, in.Grace)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			sagas.Checked += examined
			sagas.Violations = append(sagas.Violations, findings...)
		}
	}
	if drained.Checked > 0 {
		out = append(out, drained)
	}
	if runsSagas {
		out = append(out, sagas)
	}
	return out, nil
}

// writeReport prints the results for people.
func writeReport(w io.Writer, results []CheckResult, ok bool) {
	for _, res := range results {
		if res.Note != "" {
			fmt.Fprintln(w, res.Note)
		}
	}
	for _, res := range results {
		mark := "ok  "
		if len(res.Violations) > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s (%d checked", mark, res.Name, res.Checked)
		if n := len(res.Violations); n > 0 {
			fmt.Fprintf(w, ", %d violations", n)
		}
		fmt.Fprintln(w, ")")
		for i, v := range res.Violations {
			if i == maxShown {
				fmt.Fprintf(w, "          … and %d more\n", len(res.Violations)-maxShown)
				break
			}
			fmt.Fprintf(w, "          %s\n", v)
		}
	}
	if ok {
		fmt.Fprintln(w, "all invariants hold")
	} else {
		fmt.Fprintln(w, "INVARIANTS BROKEN")
	}
}

// writeJSONReport prints the results as one JSON document, every violation
// listed.
func writeJSONReport(w io.Writer, results []CheckResult, ok bool, acceptedFile string, accepted int) error {
	type invariant struct {
		Name       string   `json:"name"`
		OK         bool     `json:"ok"`
		Checked    int      `json:"checked"`
		Violations []string `json:"violations"`
		Note       string   `json:"note,omitempty"`
	}
	doc := struct {
		OK           bool        `json:"ok"`
		AcceptedFile string      `json:"accepted_file,omitempty"`
		Accepted     int         `json:"accepted_ids,omitempty"`
		Invariants   []invariant `json:"invariants"`
	}{OK: ok, AcceptedFile: acceptedFile, Accepted: accepted, Invariants: []invariant{}}
	for _, r := range results {
		doc.Invariants = append(doc.Invariants, invariant{Name: r.Name, OK: len(r.Violations) == 0, Checked: r.Checked,
			Violations: append([]string{}, r.Violations...), Note: r.Note})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// openExisting opens a service's database without creating it: checking a
// platform that never ran is a mistake, not an empty pass.
func openExisting(ctx context.Context, cfg *config.Config, service string) (*store.DB, error) {
	url := cfg.DatabaseURL(service)
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		path, _, _ = strings.Cut(path, "?")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s has no database at %s: has the platform run here? (switchyard up)", service, path)
		}
	}
	db, err := store.Open(ctx, store.Config{URL: url, MaxOpenConns: 2})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	return db, nil
}

// readIDs reads one id per line; blank lines are skipped.
func readIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		id := strings.TrimSpace(sc.Text())
		if id == "" {
			continue
		}
		if len(id) > 64 || strings.ContainsAny(id, " \t,") {
			return nil, fmt.Errorf("%s:%d: not an id: %q", path, line, id)
		}
		ids = append(ids, id)
	}
	return ids, sc.Err()
}
