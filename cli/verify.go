package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/diagram"
)

// ErrTopology is what verify returns when the traffic and the declaration
// disagree: exit status 1.
type ErrTopology struct{ Unseen, Undeclared int }

func (e *ErrTopology) Error() string {
	return fmt.Sprintf("the traffic and the declaration disagree: %d declared edges never exercised, %d edges nothing declares", e.Unseen, e.Undeclared)
}

// cmdVerify is the topology gate: every edge the traces show must be declared,
// and every declared edge must have been exercised.
func cmdVerify(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("verify")
	configPath := ConfigFlag(fs)
	since := fs.Duration("since", 15*time.Minute, "the window of traffic verified, e.g. `15m`")
	file := fs.String("file", "", "read spans from an OTLP JSON `file` (diagram --save writes one) instead of the local stack")
	jaeger := fs.String("jaeger", "", "read spans from a Jaeger query API at this `URL` instead of the local stack")
	service := fs.String("service", "", "with --jaeger: the `service` whose traces are read")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("verify takes no arguments, got %q", fs.Arg(0))
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	src, err := newSpanSource(cfg, *jaeger, *file, *service, *since)
	if err != nil {
		return err
	}
	spans, err := src.spans(ctx, "")
	if err != nil {
		return err
	}
	if len(spans) == 0 {
		return fmt.Errorf("no spans to verify against %s: run some traffic first (%s load)", cfg.Source, e.App.name())
	}
	g := diagram.Interactions(spans)
	declared := diagram.Declared(cfg)
	unseen, undeclared := diagram.Drift(declared, g.Edges)
	calls := map[string]int{}
	for _, ed := range g.Edges {
		calls[edgeText(ed)] = ed.Calls
	}
	fmt.Fprintf(e.Stdout, "verify: %d edges declared in %s, against %d traces (%d spans)\n", len(declared), cfg.Source, g.Traces, len(spans))
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	bad := map[string]bool{}
	for _, d := range unseen {
		bad[edgeText(d)] = true
	}
	for _, d := range declared {
		if !bad[edgeText(d)] {
			fmt.Fprintf(tw, "  ok\t%s\t%d\n", edgeText(d), calls[edgeText(d)])
		}
	}
	for _, d := range unseen {
		fmt.Fprintf(tw, "  FAIL\t%s\tdeclared, never exercised\n", edgeText(d))
	}
	for _, d := range undeclared {
		fmt.Fprintf(tw, "  FAIL\t%s\tseen %d times, declared nowhere\n", edgeText(d), d.Calls)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(unseen)+len(undeclared) > 0 {
		return &ErrTopology{Unseen: len(unseen), Undeclared: len(undeclared)}
	}
	fmt.Fprintln(e.Stdout, "verify: the traffic is exactly what switchyard.yaml declares")
	return nil
}
