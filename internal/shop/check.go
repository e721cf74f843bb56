package shop

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/internal/shop/check"
	"github.com/switchyard/switchyard/store"
)

// Check holds the shop to its invariants across orders, inventory and payments,
// read from their own databases (see package check); the toolkit adds its own
// (every outbox drained, no saga stuck or late). With payments simulated, what
// the invariants say of charges is left out, and the results say so.
func Check(ctx context.Context, in cli.CheckInput) ([]cli.CheckResult, error) {
	src := check.Sources{Accepted: in.Accepted, Now: in.Now, Grace: in.Grace}
	for name, db := range map[string]**store.DB{"orders": &src.Orders, "inventory": &src.Inventory, "payments": &src.Payments} {
		declared := in.Config.Service(name)
		if declared == nil {
			return nil, cli.Usagef("the platform has no %s service: check verifies the shop's orders, inventory and payments", name)
		}
		if declared.Simulated() && name == "payments" {
			continue // a simulation keeps no ledger; check says what it leaves out
		}
		if declared.Simulated() {
			return nil, cli.Usagef("%s runs as a simulation: check verifies the shop's orders and inventory from their own data", name)
		}
		d, err := in.DB(name)
		if err != nil {
			return nil, err
		}
		*db = d
	}
	rep, err := check.Run(ctx, src)
	if err != nil {
		return nil, err
	}
	out := make([]cli.CheckResult, len(rep.Results))
	for i, r := range rep.Results {
		out[i] = cli.CheckResult{Name: r.Name, Checked: r.Checked, Violations: r.Violations}
	}
	if len(out) > 0 {
		out[0].Note = tally(rep.Orders)
	}
	return out, nil
}

// tally says how many orders there are, by status.
func tally(orders map[string]int) string {
	total := 0
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(orders)) {
		total += orders[s]
		parts = append(parts, fmt.Sprintf("%s %d", s, orders[s]))
	}
	return fmt.Sprintf("%d orders: %s", total, strings.Join(parts, ", "))
}
