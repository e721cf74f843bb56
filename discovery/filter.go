package discovery

import "context"

// Filter is a Resolver that sees only the instances keep accepts: the gateway splits
// a service's instances by version tag this way for canary routing.
func Filter(r Resolver, keep func(Instance) bool) Resolver { return filtered{r, keep} }

type filtered struct {
	r    Resolver
	keep func(Instance) bool
}

func (f filtered) pick(list []Instance) []Instance {
	out := make([]Instance, 0, len(list))
	for _, inst := range list {
		if f.keep(inst) {
			out = append(out, inst)
		}
	}
	return out
}

func (f filtered) Resolve(ctx context.Context, service string) ([]Instance, error) {
	list, err := f.r.Resolve(ctx, service)
	return f.pick(list), err
}

func (f filtered) Watch(ctx context.Context, service string) (<-chan []Instance, error) {
	in, err := f.r.Watch(ctx, service)
	if err != nil {
		return nil, err
	}
	out := make(chan []Instance, 1)
	go func() {
		defer close(out)
		for list := range in {
			set := f.pick(list)
			select {
			case out <- set:
			default: // the reader is behind: replace what it has not read with the latest
				select {
				case <-out:
				default:
				}
				out <- set
			}
		}
	}()
	return out, nil
}
