package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/shop/check"
	"github.com/switchyard/switchyard/store"
)

// acceptedFile is where `load` records the orders it was told were accepted, and
// where `check` looks for them.
func acceptedFile(cfg *config.Config) string {
	return filepath.Join(cfg.DataDir, "accepted-orders.txt")
}

// errBroken is check's finding: the report says which invariants.
var errBroken = errors.New("invariants broken")

func cmdCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "check")
	configPath := configFlag(fs)
	wait := fs.Duration("wait", 0, "check again until every invariant holds or this `long` has passed (e.g. 30s)")
	accepted := fs.String("accepted", "", "`file` of order ids clients were told were accepted (default: what switchyard load recorded)")
	grace := fs.Duration("grace", 10*time.Second, "how far past its deadline a saga may still be finishing")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("check takes no arguments")
	}
	cfg, _, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	src := check.Sources{Outboxes: map[string]*store.DB{}, Grace: *grace}
	for _, name := range []string{"orders", "inventory", "payments"} {
		if cfg.Service(name) == nil {
			return usageErrorf("the platform has no %s service: check verifies the shop's orders, inventory and payments", name)
		}
	}
	for _, name := range cfg.ServiceNames() {
		svc := cfg.Service(name)
		if name != "orders" && name != "inventory" && name != "payments" && len(svc.Publishes) == 0 {
			continue
		}
		db, err := openExisting(ctx, cfg, name)
		if err != nil {
			return err
		}
		defer db.Close()
		switch name {
		case "orders":
			src.Orders = db
		case "inventory":
			src.Inventory = db
		case "payments":
			src.Payments = db
		}
		if len(svc.Publishes) > 0 {
			src.Outboxes[name] = db
		}
	}
	path := *accepted
	if path == "" {
		if _, err := os.Stat(acceptedFile(cfg)); err == nil {
			path = acceptedFile(cfg)
		}
	}
	if path != "" {
		if src.Accepted, err = readIDs(path); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "checking %d accepted orders listed in %s\n", len(src.Accepted), path)
	}
	deadline := time.Now().Add(*wait)
	for {
		rep, err := check.Run(ctx, src)
		if err != nil {
			return err
		}
		if rep.OK() || !time.Now().Before(deadline) {
			rep.Write(e.stdout)
			if !rep.OK() {
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
			return nil, fmt.Errorf("%s:%d: not an order id: %q", path, line, id)
		}
		ids = append(ids, id)
	}
	return ids, sc.Err()
}
