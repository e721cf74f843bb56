package discovery

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/discovery/internal/watch"
)

// Static is a Registry and Resolver over a list held in memory: the instances named
// in configuration, or ones a program sets. Register adds an instance for as long as
// its context lives.
type Static struct {
	mu        sync.Mutex
	instances map[string][]Instance
	changed   chan struct{} // closed and replaced on every change
}

// NewStatic returns a Static resolver holding instances.
func NewStatic(instances ...Instance) *Static {
	s := &Static{instances: map[string][]Instance{}, changed: make(chan struct{})}
	for _, inst := range instances {
		s.instances[inst.Service] = append(s.instances[inst.Service], inst)
	}
	return s
}

// Set replaces the instances of service.
func (s *Static) Set(service string, instances []Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[service] = slices.Clone(instances)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Static) update(service string, fn func([]Instance) []Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[service] = fn(slices.Clone(s.instances[service]))
	close(s.changed)
	s.changed = make(chan struct{})
}

// Register implements Registry.
func (s *Static) Register(ctx context.Context, inst Instance) error {
	if err := inst.Validate(); err != nil {
		return err
	}
	s.update(inst.Service, func(list []Instance) []Instance { return append(list, inst) })
	<-ctx.Done()
	s.update(inst.Service, func(list []Instance) []Instance {
		return slices.DeleteFunc(list, func(i Instance) bool { return i.ID == inst.ID })
	})
	return nil
}

// Resolve implements Resolver.
func (s *Static) Resolve(_ context.Context, service string) ([]Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := append([]Instance{}, s.instances[service]...)
	slices.SortFunc(list, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

// Watch implements Resolver.
func (s *Static) Watch(ctx context.Context, service string) (<-chan []Instance, error) {
	kick := make(chan struct{}, 1)
	s.mu.Lock()
	ch := s.changed // taken before the first poll, so no change can slip between them
	s.mu.Unlock()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				select {
				case kick <- struct{}{}:
				default:
				}
				s.mu.Lock()
				ch = s.changed
				s.mu.Unlock()
			}
		}
	}()
	return watch.Poll(ctx, 0, kick, func(ctx context.Context) ([]Instance, error) { return s.Resolve(ctx, service) }), nil
}
