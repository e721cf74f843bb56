package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
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
	kv   jetstream.KeyValue
	js   jetstream.JetStream
	cfg  KVConfig
	skew atomic.Int64 // server clock minus local clock, in nanoseconds
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
	k := &KV{kv: kv, js: js, cfg: cfg}
	if err := k.measureSkew(ctx); err != nil {
		return nil, fmt.Errorf("discovery: bucket %s: %w", cfg.Bucket, err)
	}
	return k, nil
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
	now := time.Now()
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
			if inst, ok := decode(e, service); ok && k.expiry(e).After(now) {
				list = append(list, inst)
			}
		}
	}
}

func decode(e jetstream.KeyValueEntry, service string) (Instance, bool) {
	var inst Instance
	if json.Unmarshal(e.Value(), &inst) != nil || inst.Service != service {
		return Instance{}, false
	}
	return inst, true
}

// expiry is when an entry stops counting, on the local clock: three heartbeats after
// the server stored it.
func (k *KV) expiry(e jetstream.KeyValueEntry) time.Time {
	return e.Created().Add(-time.Duration(k.skew.Load())).Add(3 * k.cfg.Heartbeat)
}

// Watch implements Resolver. Puts and deletes arrive as the bucket announces them;
// each entry expires exactly three heartbeats after its last write (a crashed
// instance announces nothing). While this process is disconnected from NATS nothing
// expires: a broker outage must not empty every client's view.
//
// A watch that falls silent while instances are known is started over: every
// instance writes each heartbeat, so two heartbeats without a word mean the
// watcher's consumer was lost (its server left the cluster) rather than that every
// instance died. The new watch's snapshot then replaces what was known.
func (k *KV) Watch(ctx context.Context, service string) (<-chan []Instance, error) {
	w, err := k.kv.Watch(ctx, service+".*")
	if err != nil {
		return nil, fmt.Errorf("discovery: watch %s: %w", service, err)
	}
	out := make(chan []Instance, 1)
	go func() {
		defer close(out)
		var last []Instance
		entries := map[string]kvEntry{}
		for {
			stale := k.follow(ctx, w, service, entries, &last, out)
			_ = w.Stop()
			if !stale || ctx.Err() != nil {
				return
			}
			k.cfg.Logger.Warn("discovery: the watch fell silent; watching again", "dependency", service)
			for {
				if w, err = k.kv.Watch(ctx, service+".*"); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(k.cfg.Heartbeat):
				}
			}
		}
	}()
	return out, nil
}

type kvEntry struct {
	inst    Instance
	expires time.Time
}

// follow applies w's updates to entries and sends each new set of instances, until
// ctx ends or the watcher closes (false), or it stays silent for two heartbeats
// while instances are known (true). After a restart, entries the new watcher's
// snapshot does not hold are dropped once the snapshot is complete.
func (k *KV) follow(ctx context.Context, w jetstream.KeyWatcher, service string, entries map[string]kvEntry, last *[]Instance, out chan []Instance) bool {
	ready := false
	seen := map[string]bool{} // keys of the current watcher's snapshot
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	silence := time.NewTicker(k.cfg.Heartbeat)
	defer silence.Stop()
	heard := time.Now()
	emit := func() {
		now := time.Now()
		next := now.Add(time.Hour)
		list := make([]Instance, 0, len(entries))
		connected := k.js.Conn().IsConnected()
		for key, e := range entries {
			if connected && !e.expires.After(now) {
				delete(entries, key)
				continue
			}
			list = append(list, e.inst)
			if e.expires.Before(next) {
				next = e.expires
			}
		}
		if !connected {
			next = now.Add(k.cfg.Heartbeat)
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
		sortInstances(list)
		if *last == nil || !equalSets(list, *last) {
			*last = list
			send(out, list)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case e, ok := <-w.Updates():
			if !ok {
				return false
			}
			heard = time.Now()
			if e == nil {
				if !ready {
					for key := range entries { // gone while the previous watch was silent
						if !seen[key] {
							delete(entries, key)
						}
					}
				}
				ready = true
			} else {
				seen[e.Key()] = true
				if inst, ok := decode(e, service); ok && e.Operation() == jetstream.KeyValuePut {
					entries[e.Key()] = kvEntry{inst: inst, expires: k.expiry(e)}
				} else {
					delete(entries, e.Key())
				}
			}
			if ready {
				emit()
			}
		case <-timer.C:
			if ready {
				emit()
			}
		case <-silence.C:
			if len(entries) > 0 && k.js.Conn().IsConnected() && time.Since(heard) > 2*k.cfg.Heartbeat {
				return true
			}
		}
	}
}

// measureSkew estimates how far the server's clock is ahead of ours, by writing a key
// and reading back the time the server stamped on it.
func (k *KV) measureSkew(ctx context.Context) error {
	key := "_clock." + NewID()
	before := time.Now()
	if _, err := k.kv.Put(ctx, key, nil); err != nil {
		return err
	}
	after := time.Now()
	// In a cluster, any replica answers a read (a direct get), and a follower may not
	// hold the write yet: read again, briefly, until it does.
	var e jetstream.KeyValueEntry
	var err error
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		e, err = k.kv.Get(ctx, key)
		if !errors.Is(err, jetstream.ErrKeyNotFound) || wait > time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if err != nil {
		return err
	}
	_ = k.kv.Purge(ctx, key)
	k.skew.Store(int64(e.Created().Sub(before.Add(after.Sub(before) / 2))))
	return nil
}
