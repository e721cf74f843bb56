package diagram

import "github.com/switchyard/switchyard/config"

// Declared are the interactions a platform declares: each service's (and the
// gateway's) dependencies, what each publishes and what each consumes — the graph
// the observed one is held against.
func Declared(cfg *config.Config) []Edge {
	var out []Edge
	for _, s := range cfg.Processes() {
		for dep, d := range s.Dependencies {
			p := HTTP
			if d.Protocol == "grpc" {
				p = GRPC
			}
			out = append(out, Edge{From: s.Name, To: dep, Protocol: p})
		}
		for _, t := range s.Publishes {
			out = append(out, Edge{From: s.Name, To: Bus, Protocol: Event, Label: t})
		}
		for _, t := range s.Subscriptions {
			out = append(out, Edge{From: Bus, To: s.Name, Protocol: Event, Label: t})
		}
	}
	SortEdges(out)
	return out
}
