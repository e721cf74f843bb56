package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KVConfig configures the NATS key-value registry.
type KVConfig struct {
	// Bucket is the key-value bucket [switchyard_instances].
	Bucket string
	// Heartbeat is how often an instance rewrites its entry [1s]. An entry not
	// rewritten for three heartbeats expires. All instances sharing a bucket must use
	// the same heartbeat: the bucket's TTL is fixed when it is created.
	Heartbeat time.Duration
	// Replicas of the bucket in a JetStream cluster [1].
	Replicas int
	// Logger receives heartbeat failures. Nil means silent.
	Logger *slog.Logger
}

// KV is a Registry and Resolver on a NATS JetStream key-value bucket. Keys are
// "<service>.<instance id>"; values are the Instance as JSON.
type KV struct {
	kv  jetstream.KeyValue
	cfg KVConfig
}

// NewKV opens the bucket, creating it if needed (in memory: instances are
// ephemeral, and a restarted broker is repopulated within a heartbeat).
func NewKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (*KV, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "switchyard_instances"
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "Switchyard service instances; entries expire three heartbeats after their last write",
		History:     1,
		TTL:         3 * cfg.Heartbeat,
		Storage:     jetstream.MemoryStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: open bucket %s: %w", cfg.Bucket, err)
	}
	return &KV{kv: kv, cfg: cfg}, nil
}

// Expiry is how long a crashed instance stays resolvable at most.
func (k *KV) Expiry() time.Duration { return 3 * k.cfg.Heartbeat }

func key(service, id string) string { return service + "." + id }

// Register implements Registry.
func (k *KV) Register(ctx context.Context, inst Instance) error {
	if err := inst.Validate(); err != nil {
		return err
	}
	value, err := json.Marshal(inst)
	if err != nil {
		return err
	}
	name := key(inst.Service, inst.ID)
	if _, err := k.kv.Put(ctx, name, value); err != nil {
		return fmt.Errorf("discovery: register %s: %w", name, err)
	}
	t := time.NewTicker(k.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Withdraw at once, so callers stop picking this instance before it goes.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := k.kv.Delete(dctx, name); err != nil {
				k.cfg.Logger.Warn("discovery: deregister failed; the entry will expire", "key", name, "error", err)
			}
			return nil
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, k.cfg.Heartbeat)
			_, err := k.kv.Put(hctx, name, value)
			cancel()
			if err != nil && ctx.Err() == nil {
				k.cfg.Logger.Warn("discovery: heartbeat failed", "key", name, "error", err)
			}
		}
	}
}

// Resolve implements Resolver.
func (k *KV) Resolve(ctx context.Context, service string) ([]Instance, error) {
	w, err := k.kv.Watch(ctx, service+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("discovery: resolve %s: %w", service, err)
	}
	defer func() { _ = w.Stop() }()
	list := []Instance{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("discovery: resolve %s: watcher closed", service)
			}
			if e == nil { // end of the current values
				return sortInstances(list), nil
			}
			var inst Instance
			if json.Unmarshal(e.Value(), &inst) == nil && inst.Service == service {
				list = append(list, inst)
			}
		}
	}
}

// Watch implements Resolver. Changes announced by the bucket arrive at once;
// expiries are noticed by a rescan every heartbeat.
func (k *KV) Watch(ctx context.Context, service string) (<-chan []Instance, error) {
	w, err := k.kv.Watch(ctx, service+".*", jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("discovery: watch %s: %w", service, err)
	}
	kick := make(chan struct{}, 1)
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return watchLoop(ctx, k.cfg.Heartbeat, kick, func(ctx context.Context) ([]Instance, error) {
		list, err := k.Resolve(ctx, service)
		if err != nil && !errors.Is(err, context.Canceled) {
			k.cfg.Logger.Warn("discovery: rescan failed", "service", service, "error", err)
		}
		return list, err
	}), nil
}
