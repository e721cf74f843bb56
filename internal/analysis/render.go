package analysis

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Text writes the report for a terminal: the findings, worst first, each with its
// place and reason; the amplification of every path; the deadline of each route's
// hops.
func (r Report) Text(w io.Writer) error {
	var b strings.Builder
	counts := map[Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	fmt.Fprintf(&b, "lint: %s — %d errors, %d warnings, %d notes (budgets at %g req/s per entry point)\n\n",
		r.Source, counts[Error], counts[Warning], counts[Info], r.Rate)
	for _, f := range r.Findings {
		where := f.Key
		if f.Line > 0 {
			where = fmt.Sprintf("%s:%d %s", r.Source, f.Line, f.Key)
		}
		fmt.Fprintf(&b, "%-7s %s  %s\n        %s\n        why: %s\n", f.Severity, f.Rule, f.Subject, f.Message, f.Reason)
		if where != "" {
			fmt.Fprintf(&b, "        at: %s\n", where)
		}
	}
	if len(r.Paths) > 0 {
		b.WriteString("\nWhen a leaf fails, the attempts that reach it per request entering the path:\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  path\twithout budgets\twith budgets at %g req/s\n", r.Rate)
		for _, p := range r.Paths {
			fmt.Fprintf(tw, "  %s\t×%d\t×%.2f\n", p, p.Worst, p.Budgeted)
		}
		_ = tw.Flush()
	}
	if len(r.Routes) > 0 {
		b.WriteString("\nDeadline budget per hop (the most each callee has left on arrival):\n")
		for _, rt := range r.Routes {
			fmt.Fprintf(&b, "  %s (%s)\n", rt.Prefix, rt.Timeout)
			for _, chain := range rt.Paths {
				fmt.Fprintf(&b, "    %s\n", chainText(chain))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func chainText(chain []HopBudget) string {
	parts := []string{chain[0].From}
	for _, h := range chain {
		parts = append(parts, fmt.Sprintf("%s (%s)", h.To, h.Left))
	}
	return strings.Join(parts, " → ")
}

// Markdown writes the report as a section of the design document.
func (r Report) Markdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## Policy analysis\n\n")
	fmt.Fprintf(&b, "What `switchyard lint` finds in the policies and the shape of the system (retry budgets taken at %g requests per second entering each entry point).\n\n", r.Rate)
	if len(r.Findings) == 0 {
		b.WriteString("No findings.\n\n")
	} else {
		b.WriteString("| Severity | Rule | Subject | Finding | Why it matters |\n|---|---|---|---|---|\n")
		for _, f := range r.Findings {
			msg := f.Message
			if f.Line > 0 {
				msg += fmt.Sprintf(" (line %d, `%s`)", f.Line, f.Key)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.Severity, f.Rule, cell(f.Subject), cell(msg), cell(f.Reason))
		}
		b.WriteString("\n")
	}
	if len(r.Paths) > 0 {
		b.WriteString("When a leaf fails, the attempts that reach it per request entering the path (breakers left out: they open only once the failures have arrived):\n\n| Path | Without budgets | With budgets |\n|---|---|---|\n")
		for _, p := range r.Paths {
			fmt.Fprintf(&b, "| %s | ×%d | ×%.2f |\n", p, p.Worst, p.Budgeted)
		}
		b.WriteString("\n")
	}
	if len(r.Routes) > 0 {
		b.WriteString("The deadline of each route, hop by hop (the most each callee has left on arrival):\n\n| Route | Deadline | Hops |\n|---|---|---|\n")
		for _, rt := range r.Routes {
			var chains []string
			for _, c := range rt.Paths {
				chains = append(chains, chainText(c))
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", rt.Prefix, rt.Timeout, cell(strings.Join(chains, "; ")))
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// Changes is what changing a configuration does to its analysis.
type Changes struct {
	// Added and Removed are findings present in only one of the two reports.
	Added   []Finding `json:"added"`
	Removed []Finding `json:"removed"`
	// Paths are the paths whose amplification changed, with before and after.
	Paths []PathChange `json:"paths"`
	// Routes are the hops whose deadline budget changed.
	Routes []HopChange `json:"routes"`
}

// PathChange is one path's amplification before and after.
type PathChange struct {
	Path           string  `json:"path"`
	WorstBefore    int     `json:"worst_before"`
	WorstAfter     int     `json:"worst_after"`
	BudgetedBefore float64 `json:"budgeted_before"`
	BudgetedAfter  float64 `json:"budgeted_after"`
}

// HopChange is one hop of a route whose budget changed.
type HopChange struct {
	Route  string        `json:"route"`
	Hop    string        `json:"hop"`
	Before time.Duration `json:"before"`
	After  time.Duration `json:"after"`
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Paths) == 0 && len(c.Routes) == 0
}

// Diff compares the analysis of a changed configuration with the original's.
func Diff(before, after Report) Changes {
	var c Changes
	id := func(f Finding) string { return f.Rule + "|" + f.Subject + "|" + f.Message }
	in := func(list []Finding, f Finding) bool {
		return slices.ContainsFunc(list, func(g Finding) bool { return id(g) == id(f) })
	}
	for _, f := range after.Findings {
		if !in(before.Findings, f) {
			c.Added = append(c.Added, f)
		}
	}
	for _, f := range before.Findings {
		if !in(after.Findings, f) {
			c.Removed = append(c.Removed, f)
		}
	}
	paths := map[string]*PathChange{}
	for _, p := range before.Paths {
		paths[p.String()] = &PathChange{Path: p.String(), WorstBefore: p.Worst, BudgetedBefore: p.Budgeted}
	}
	for _, p := range after.Paths {
		pc := paths[p.String()]
		if pc == nil {
			pc = &PathChange{Path: p.String()}
			paths[p.String()] = pc
		}
		pc.WorstAfter, pc.BudgetedAfter = p.Worst, p.Budgeted
	}
	for _, pc := range paths {
		if pc.WorstBefore != pc.WorstAfter || fmt.Sprintf("%.2f", pc.BudgetedBefore) != fmt.Sprintf("%.2f", pc.BudgetedAfter) {
			c.Paths = append(c.Paths, *pc)
		}
	}
	slices.SortFunc(c.Paths, func(a, b PathChange) int { return cmp.Compare(a.Path, b.Path) })
	hops := map[[2]string]*HopChange{}
	for _, list := range []struct {
		r     []RouteBudget
		after bool
	}{{before.Routes, false}, {after.Routes, true}} {
		for _, rt := range list.r {
			for _, chain := range rt.Paths {
				for i := range chain {
					k := [2]string{rt.Prefix, chainNames(chain[:i+1])}
					h := hops[k]
					if h == nil {
						h = &HopChange{Route: rt.Prefix, Hop: k[1]}
						hops[k] = h
					}
					if list.after {
						h.After = chain[i].Left
					} else {
						h.Before = chain[i].Left
					}
				}
			}
		}
	}
	for _, h := range hops {
		if h.Before != h.After {
			c.Routes = append(c.Routes, *h)
		}
	}
	slices.SortFunc(c.Routes, func(a, b HopChange) int { return cmp.Or(cmp.Compare(a.Route, b.Route), cmp.Compare(a.Hop, b.Hop)) })
	return c
}

func chainNames(chain []HopBudget) string {
	parts := []string{chain[0].From}
	for _, h := range chain {
		parts = append(parts, h.To)
	}
	return strings.Join(parts, " → ")
}

// Text writes the changes for a terminal.
func (c Changes) Text(w io.Writer) error {
	var b strings.Builder
	if c.Empty() {
		b.WriteString("the change alters no finding, amplification or deadline budget\n")
	}
	for _, f := range c.Added {
		fmt.Fprintf(&b, "+ %-7s %s  %s: %s\n", f.Severity, f.Rule, f.Subject, f.Message)
	}
	for _, f := range c.Removed {
		fmt.Fprintf(&b, "- %-7s %s  %s: %s\n", f.Severity, f.Rule, f.Subject, f.Message)
	}
	for _, p := range c.Paths {
		fmt.Fprintf(&b, "~ amplification %s: ×%d → ×%d without budgets, ×%.2f → ×%.2f with them\n", p.Path, p.WorstBefore, p.WorstAfter, p.BudgetedBefore, p.BudgetedAfter)
	}
	for _, h := range c.Routes {
		fmt.Fprintf(&b, "~ deadline %s %s: %s → %s left on arrival\n", h.Route, h.Hop, h.Before, h.After)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
