package diagram

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Text writes the graph in the seeds' style, one edge per line:
//
//	client    --HTTP-->   gateway      120 calls
//	orders    --gRPC-->   inventory    240 calls   2 errors (0.8%)   3 retries   1 refused by the open breaker
//	orders    --event-->  bus --> inventory   orders.order.placed.v1   120
//	orders    --SQL-->    orders-db    961 statements
func (g Graph) Text(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range g.Edges {
		if e.Protocol == Event {
			continue // drawn as flows below
		}
		unit := "calls"
		if e.Protocol == SQL {
			unit = "statements"
		}
		fmt.Fprintf(tw, "%s\t--%s-->\t%s\t%d %s%s\n", e.From, e.Protocol, e.To, e.Calls, unit, failures(e))
	}
	delivered := map[string]bool{}
	for _, f := range g.Flows {
		fmt.Fprintf(tw, "%s\t--event-->\tbus --> %s\t%s  %d delivered%s\n", f.From, f.To, f.Type, f.Count,
			failures(g.edge(Bus, f.To, f.Type)))
		delivered[f.From+"\x00"+f.Type] = true
		delivered[Bus+"\x00"+f.To+"\x00"+f.Type] = true
	}
	for _, e := range g.Edges {
		if e.Protocol != Event {
			continue
		}
		switch {
		case e.To == Bus && !delivered[e.From+"\x00"+e.Label]:
			fmt.Fprintf(tw, "%s\t--event-->\tbus\t%s  %d published, no consumer seen%s\n", e.From, e.Label, e.Calls, failures(e))
		case e.From == Bus && !delivered[Bus+"\x00"+e.To+"\x00"+e.Label]:
			fmt.Fprintf(tw, "bus\t--event-->\t%s\t%s  %d delivered%s\n", e.To, e.Label, e.Calls, failures(e))
		}
	}
	return tw.Flush()
}

func (g Graph) edge(from, to, label string) Edge {
	for _, e := range g.Edges {
		if e.From == from && e.To == to && e.Label == label {
			return e
		}
	}
	return Edge{}
}

func failures(e Edge) string {
	var b strings.Builder
	if e.Errors > 0 {
		fmt.Fprintf(&b, "\t%d errors (%.1f%%)", e.Errors, 100*e.ErrorRate())
	}
	if e.Retries > 0 {
		fmt.Fprintf(&b, "\t%d retries", e.Retries)
	}
	if e.BreakerOpen > 0 {
		fmt.Fprintf(&b, "\t%d refused by the open breaker", e.BreakerOpen)
	}
	return b.String()
}

// Mermaid writes the graph as a Mermaid flowchart: services as boxes, the client as
// a stadium, the bus as a hexagon, databases as cylinders; calls as solid arrows,
// events as dotted ones, each labelled with its protocol, count and error rate.
func (g Graph) Mermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	var nodes []string
	for _, e := range g.Edges {
		for _, n := range []string{e.From, e.To} {
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		fmt.Fprintf(&b, "  %s%s\n", nodeID(n), shape(n, g))
	}
	// Events of one type between the same ends are one arrow per end; several types
	// on one arrow are listed together.
	for _, e := range g.Edges {
		label := string(e.Protocol)
		if e.Label != "" {
			label += " " + e.Label
		}
		label += fmt.Sprintf(" ×%d", e.Calls)
		if e.Errors > 0 {
			label += fmt.Sprintf(", %.1f%% errors", 100*e.ErrorRate())
		}
		if e.Retries > 0 {
			label += fmt.Sprintf(", %d retries", e.Retries)
		}
		if e.BreakerOpen > 0 {
			label += fmt.Sprintf(", breaker open: %d refused", e.BreakerOpen)
		}
		arrow := "-->"
		if e.Protocol.Async() {
			arrow = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", nodeID(e.From), arrow, mermaidText(label), nodeID(e.To))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func shape(n string, g Graph) string {
	switch {
	case n == Client:
		return "([client])"
	case n == Bus:
		return "{{bus}}"
	case g.isDatabase(n):
		return "[(" + n + ")]"
	}
	return "[" + n + "]"
}

func (g Graph) isDatabase(n string) bool {
	for _, e := range g.Edges {
		if e.To == n && e.Protocol == SQL {
			return true
		}
	}
	return false
}

// nodeID makes a Mermaid identifier of a participant name.
func nodeID(n string) string {
	var b strings.Builder
	for _, r := range n {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	id := b.String()
	switch id {
	case "end", "graph", "flowchart", "subgraph", "class", "style", "click":
		id += "_"
	}
	return "n_" + id
}

// mermaidText keeps a label inside Mermaid's quoting: no double quotes, no
// semicolons or hashes (statement separators and entity codes).
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "'", ";", ",", "#", "no.", "\n", " ").Replace(s)
}
