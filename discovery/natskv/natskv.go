// Package natskv is discovery on a NATS JetStream key-value bucket: a Registry and
// a Resolver for instances that announce themselves, on the embedded broker and on
// an external cluster alike (NATS 2.9 and later).
//
// Keys are "<service>.<instance id>"; values are the discovery.Instance as JSON.
// Every instance rewrites its key each heartbeat, and a watcher drops an entry
// three heartbeats after the server stored it, once the registry has said so twice
// a heartbeat apart (server timestamps, corrected by the
// measured offset between the server's clock and ours) — but only as [KV]'s doc
// says: the registry is a part that restarts, and its outage must stall no call.
package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/internal/watch"
)

// Config configures the registry. Zero fields take the default in brackets.
type Config struct {
	// Bucket is the key-value bucket [switchyard_instances].
	Bucket string
	// Heartbeat is how often an instance rewrites its entry [1s]. An entry not
	// rewritten for three heartbeats expires. All instances sharing a bucket must use
	// the same heartbeat: the bucket's TTL is fixed when it is created.
	Heartbeat time.Duration
	// Replicas of the bucket in a JetStream cluster [1].
	Replicas int
	// Logger receives the registry's changes of health: heartbeats failing and
	// restored, the bucket created again, a watch started over. Nil means silent.
	Logger *slog.Logger
	// Metrics records registry errors and the state of each view; nil records
	// nothing.
	Metrics *discovery.Metrics
}

// KV is a discovery.Registry and discovery.Resolver on a NATS JetStream key-value
// bucket.
//
// The registry is a part that restarts (an upgrade, a node lost), and KV is built
// so that an outage of it stalls no call:
//
//   - The bucket is on file storage (replicated in a cluster), so a restarted
//     broker still knows every instance. A bucket found missing (deleted, or an
//     older in-memory one lost) is created again by the first instance whose
//     heartbeat fails, and every instance announces itself again at once — on
//     reconnection, not after a timeout.
//   - Failed heartbeats are retried with a bounded backoff, counted, and logged once
//     when they start failing and once when they are restored.
//   - A view never loses an instance to an outage: while the registry cannot be
//     read the view keeps the instances it last knew (stale, and marked so in
//     Metrics and by [KV.Stale]); once it answers again every instance has three
//     heartbeats to re-announce itself before it can expire; and an entry is taken
//     away on expiry only after the registry itself confirms it is gone. Explicit
//     withdrawals (a deleted key) take effect at once.
type KV struct {
	js   jetstream.JetStream
	cfg  Config
	skew atomic.Int64 // server clock minus local clock, in nanoseconds

	mu         sync.Mutex
	bucket     jetstream.KeyValue
	down       bool      // the last operation on the registry failed
	downSince  time.Time // when it started failing
	upSince    time.Time // when it last became reachable again (zero: never lost)
	reconnects uint64    // the connection's reconnections, last seen
}

// New opens the bucket, creating it if needed.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*KV, error) {
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
	k := &KV{js: js, cfg: cfg, reconnects: js.Conn().Stats().Reconnects}
	bucket, err := k.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("natskv: open bucket %s: %w", cfg.Bucket, err)
	}
	k.bucket = bucket
	if err := k.measureSkew(ctx); err != nil {
		return nil, fmt.Errorf("natskv: bucket %s: %w", cfg.Bucket, err)
	}
	return k, nil
}

// open creates the bucket, or brings an existing one to this configuration.
func (k *KV) open(ctx context.Context) (jetstream.KeyValue, error) {
	want := jetstream.KeyValueConfig{
		Bucket:      k.cfg.Bucket,
		Description: "Switchyard service instances; entries expire three heartbeats after their last write",
		History:     1,
		TTL:         3 * k.cfg.Heartbeat,
		Storage:     jetstream.FileStorage,
		Replicas:    k.cfg.Replicas,
	}
	bucket, err := k.js.CreateOrUpdateKeyValue(ctx, want)
	for try := 1; storeRace(err) && try < 3; try++ {
		// nats-server removes an account's directory in the background once its last
		// file-backed stream is deleted; a stream created at that moment fails. Again.
		time.Sleep(50 * time.Millisecond)
		bucket, err = k.js.CreateOrUpdateKeyValue(ctx, want)
	}
	if err == nil {
		return bucket, nil
	}
	// Earlier versions kept the bucket in memory, and a stream's storage cannot be
	// changed in place. Its entries are rewritten every heartbeat: replace it.
	old, lookErr := k.js.KeyValue(ctx, k.cfg.Bucket)
	if lookErr != nil {
		return nil, err
	}
	st, stErr := old.Status(ctx)
	kvs, ok := st.(*jetstream.KeyValueBucketStatus)
	if stErr != nil || !ok || kvs.StreamInfo().Config.Storage != jetstream.MemoryStorage {
		return nil, err
	}
	k.cfg.Logger.Warn("natskv: replacing the in-memory registry bucket with one on file", "bucket", k.cfg.Bucket)
	if err := k.js.DeleteKeyValue(ctx, k.cfg.Bucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, err
	}
	return k.js.CreateOrUpdateKeyValue(ctx, want)
}

// storeRace reports whether err is the server failing to create a stream's store
// (an internal error, not a refusal of the configuration).
func storeRace(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && api.Code == 500
}

func (k *KV) current() jetstream.KeyValue {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.bucket
}

// ensure creates the bucket again if the registry says it does not exist. Any other
// answer (or none) leaves it alone: an unreachable registry is not an empty one.
func (k *KV) ensure(ctx context.Context) {
	if _, err := k.js.KeyValue(ctx, k.cfg.Bucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		return
	}
	bucket, err := k.open(ctx)
	if err != nil {
		k.failed("create")
		return
	}
	k.mu.Lock()
	k.bucket = bucket
	k.mu.Unlock()
	k.cfg.Logger.Warn("natskv: the registry's bucket was missing; created it again", "bucket", k.cfg.Bucket)
}

// ok notes that the registry answered.
func (k *KV) ok() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.down {
		k.down = false
		k.upSince = time.Now()
	}
}

// failed notes that an operation on the registry failed.
func (k *KV) failed(op string) {
	k.cfg.Metrics.RegistryError(op)
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.down {
		k.down, k.downSince = true, time.Now()
	}
}

// trusted reports whether the registry is reachable now, and since when it has
// been (zero if it never was lost). A reconnection counts as coming back.
func (k *KV) trusted() (bool, time.Time) {
	nc := k.js.Conn()
	reconnects := nc.Stats().Reconnects
	k.mu.Lock()
	defer k.mu.Unlock()
	if reconnects != k.reconnects {
		k.reconnects, k.upSince = reconnects, time.Now()
	}
	return !k.down && nc.IsConnected(), k.upSince
}

// Stale reports whether the registry cannot be read now, and since when: the
// process's views are then the instances it last knew.
func (k *KV) Stale() (since time.Time, stale bool) {
	if ok, _ := k.trusted(); ok {
		return time.Time{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.downSince.IsZero() {
		return time.Now(), true
	}
	return k.downSince, true
}

// Expiry is how long a crashed instance stays resolvable at most while the
// registry answers: three heartbeats, and one more to confirm it is gone.
func (k *KV) Expiry() time.Duration { return 4 * k.cfg.Heartbeat }

func key(service, id string) string { return service + "." + id }

// Register implements Registry. The entry is rewritten every heartbeat, and at once
// whenever the connection to the broker comes back (the broker may have restarted).
// A heartbeat that fails is retried after a backoff growing from 100ms to one
// heartbeat; if the bucket itself is missing it is created again.
func (k *KV) Register(ctx context.Context, inst discovery.Instance) error {
	if err := inst.Validate(); err != nil {
		return err
	}
	value, err := json.Marshal(inst)
	if err != nil {
		return err
	}
	name := key(inst.Service, inst.ID)
	if err := k.beat(ctx, name, value); err != nil {
		return fmt.Errorf("natskv: register %s: %w", name, err)
	}
	nc := k.js.Conn()
	reconnected := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(reconnected)
	next := time.NewTimer(k.cfg.Heartbeat)
	defer next.Stop()
	failures, since := 0, time.Time{}
	for {
		select {
		case <-ctx.Done():
			// Withdraw at once, so callers stop picking this instance before it goes.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := k.current().Delete(dctx, name); err != nil {
				k.cfg.Logger.Warn("natskv: deregister failed; the entry will expire", "key", name, "error", err)
			}
			return nil
		case <-reconnected:
		case <-next.C:
		}
		err := k.beat(ctx, name, value)
		switch {
		case ctx.Err() != nil:
			continue
		case err == nil:
			if failures > 0 {
				k.cfg.Logger.Info("natskv: heartbeat restored", "key", name, "failures", failures, "after", time.Since(since).Round(time.Millisecond))
			}
			failures = 0
			next.Reset(k.cfg.Heartbeat)
		default:
			failures++
			if failures == 1 {
				since = time.Now()
				k.cfg.Logger.Warn("natskv: heartbeat failing; retrying with backoff until the registry answers", "key", name, "error", err)
			}
			next.Reset(k.backoff(failures))
		}
	}
}

// beat writes the entry once; if that fails it makes sure the bucket exists and
// tries once more.
func (k *KV) beat(ctx context.Context, name string, value []byte) error {
	put := func() error {
		hctx, cancel := context.WithTimeout(ctx, k.cfg.Heartbeat)
		defer cancel()
		_, err := k.current().Put(hctx, name, value)
		return err
	}
	err := put()
	if err != nil && ctx.Err() == nil && k.js.Conn().IsConnected() {
		k.ensure(ctx)
		err = put()
	}
	if err != nil {
		if ctx.Err() == nil {
			k.failed("heartbeat")
		}
		return err
	}
	k.ok()
	return nil
}

// backoff is the wait after n failed heartbeats: full jitter below 100ms × 2ⁿ⁻¹,
// at most one heartbeat.
func (k *KV) backoff(n int) time.Duration {
	bound := min(100*time.Millisecond<<min(n-1, 16), k.cfg.Heartbeat)
	return bound/2 + rand.N(bound/2+1)
}

// Resolve implements Resolver.
func (k *KV) Resolve(ctx context.Context, service string) ([]discovery.Instance, error) {
	w, err := k.current().Watch(ctx, service+".*", jetstream.IgnoreDeletes())
	if err != nil {
		k.failed("read")
		return nil, fmt.Errorf("natskv: resolve %s: %w", service, err)
	}
	defer func() { _ = w.Stop() }()
	now := time.Now()
	list := []discovery.Instance{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("natskv: resolve %s: watcher closed", service)
			}
			if e == nil { // end of the current values
				k.ok()
				slices.SortFunc(list, byID)
				return list, nil
			}
			if inst, ok := decode(e, service); ok && k.expiry(e).After(now) {
				list = append(list, inst)
			}
		}
	}
}

func decode(e jetstream.KeyValueEntry, service string) (discovery.Instance, bool) {
	var inst discovery.Instance
	if json.Unmarshal(e.Value(), &inst) != nil || inst.Service != service {
		return discovery.Instance{}, false
	}
	return inst, true
}

// expiry is when an entry stops counting, on the local clock: three heartbeats after
// the server stored it.
func (k *KV) expiry(e jetstream.KeyValueEntry) time.Time {
	return e.Created().Add(-time.Duration(k.skew.Load())).Add(3 * k.cfg.Heartbeat)
}

// Watch implements Resolver. Puts and deletes arrive as the bucket announces them;
// an entry expires three heartbeats after its last write (a crashed instance
// announces nothing), but only as the KV type's doc says: never while the registry
// cannot be read, not before three heartbeats after it came back, and only once
// the registry has said twice, a heartbeat apart, that the entry is gone.
//
// A watch that falls silent while instances are known is started over: every
// instance writes each heartbeat, so two heartbeats without a word mean the
// watcher's consumer was lost (its server left the cluster, the stream's leader
// changed, the broker restarted) rather than that every instance died. A watch
// that knows no instance is started over after three.
func (k *KV) Watch(ctx context.Context, service string) (<-chan []discovery.Instance, error) {
	w, err := k.current().Watch(ctx, service+".*")
	if err != nil {
		k.failed("watch")
		return nil, fmt.Errorf("natskv: watch %s: %w", service, err)
	}
	out := make(chan []discovery.Instance, 1)
	v := &view{k: k, service: service, entries: map[string]kvEntry{}, suspect: map[string]time.Time{}, out: out}
	go func() {
		defer close(out)
		for {
			v.follow(ctx, w)
			_ = w.Stop()
			if ctx.Err() != nil {
				return
			}
			if len(v.entries) > 0 {
				k.cfg.Logger.Warn("natskv: the watch fell silent; watching again", "dependency", service)
			} else { // routine for a service with no instance
				k.cfg.Logger.Debug("natskv: no word on a service with no instance; watching again", "dependency", service)
			}
			v.publish(false)
			for attempt := 1; ; attempt++ {
				if w, err = k.current().Watch(ctx, service+".*"); err == nil {
					break
				}
				k.failed("watch")
				if attempt == 1 {
					k.ensure(ctx)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(k.backoff(attempt)):
				}
			}
		}
	}()
	return out, nil
}

type kvEntry struct {
	inst    discovery.Instance
	expires time.Time
}

// view is one watch's knowledge of a service's instances.
type view struct {
	k       *KV
	service string
	entries map[string]kvEntry
	// suspect holds when the registry first said an entry was gone: it is dropped
	// only when a second reading, a heartbeat later, says so too. A node of the
	// cluster that was just restarted may answer a read from its own stale copy
	// for a moment before it knows it is not the stream's leader, and one such
	// answer must not empty a view of live instances.
	suspect map[string]time.Time
	last    []discovery.Instance
	out     chan []discovery.Instance
}

// follow applies w's updates to the view and sends each new set of instances,
// until ctx ends, the watcher closes, or it stays silent for two heartbeats while
// instances are known.
func (v *view) follow(ctx context.Context, w jetstream.KeyWatcher) {
	hb := v.k.cfg.Heartbeat
	ready := false // the watcher's snapshot is complete
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	silence := time.NewTicker(hb)
	defer silence.Stop()
	heard := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			heard = time.Now()
			if e == nil {
				ready = true
				v.k.ok()
			} else {
				v.apply(e)
			}
			if ready {
				timer.Reset(v.expire(ctx))
			}
		case <-timer.C:
			if ready {
				timer.Reset(v.expire(ctx))
			}
		case <-silence.C:
			// Instances known: two heartbeats without a word. None known: a lost
			// watch would never be noticed by its silence alone, so it is started
			// over after three (a service with no instance costs a watch a while).
			quiet := time.Since(heard)
			if v.k.js.Conn().IsConnected() && (len(v.entries) > 0 && quiet > 2*hb || quiet > 3*hb) {
				return
			}
			if !ready {
				v.publish(false)
			}
		}
	}
}

// apply records one update: a put refreshes its entry, a delete or purge (a
// withdrawal the registry announces) removes it.
func (v *view) apply(e jetstream.KeyValueEntry) {
	delete(v.suspect, e.Key())
	if inst, ok := decode(e, v.service); ok && e.Operation() == jetstream.KeyValuePut {
		v.entries[e.Key()] = kvEntry{inst: inst, expires: v.k.expiry(e)}
		return
	}
	delete(v.entries, e.Key())
}

// expire drops the entries the registry confirms have expired, publishes the view,
// and returns when to look again.
func (v *view) expire(ctx context.Context) time.Duration {
	hb := v.k.cfg.Heartbeat
	now := time.Now()
	trusted, since := v.k.trusted()
	if !trusted {
		v.publish(false)
		return hb
	}
	// Instances get three heartbeats after the registry came back to re-announce.
	floor := since.Add(3 * hb)
	next := now.Add(time.Hour)
	for key, e := range v.entries {
		expires := e.expires
		if floor.After(expires) {
			expires = floor
		}
		if !expires.After(now) {
			fresh, gone, err := v.k.lookup(ctx, key, v.service)
			switch {
			case err != nil: // the registry stopped answering: keep everything
				v.publish(false)
				return hb
			case gone && !v.suspect[key].IsZero() && now.Sub(v.suspect[key]) >= hb:
				delete(v.entries, key)
				delete(v.suspect, key)
				v.k.cfg.Logger.Info("natskv: instance gone", "dependency", v.service, "instance", e.inst.ID, "addr", e.inst.Addr)
				continue
			case gone: // ask again a heartbeat later
				if v.suspect[key].IsZero() {
					v.suspect[key] = now
				}
				expires = v.suspect[key].Add(hb)
			default: // the watch lags behind the bucket
				delete(v.suspect, key)
				v.entries[key] = fresh
				expires = fresh.expires
			}
		}
		if expires.Before(next) {
			next = expires
		}
	}
	v.publish(true)
	return max(time.Until(next), time.Millisecond)
}

// publish sends the view's instances when they changed, and records its state.
func (v *view) publish(trusted bool) {
	list := make([]discovery.Instance, 0, len(v.entries))
	for _, e := range v.entries {
		list = append(list, e.inst)
	}
	slices.SortFunc(list, byID)
	v.k.cfg.Metrics.View(v.service, len(list), !trusted)
	if v.last == nil && !trusted && len(list) == 0 {
		return // nothing known yet: say nothing rather than "none"
	}
	if v.last == nil || !slices.Equal(list, v.last) {
		if len(list) == 0 && len(v.last) > 0 {
			v.k.cfg.Logger.Warn("natskv: no instance of the dependency is left", "dependency", v.service)
		}
		v.last = list
		watch.Send(v.out, list)
	}
}

// lookup asks the registry for one entry: gone when it has none, or only one that
// has expired; an error when it does not answer. It reads from the bucket's stream
// leader: a key-value Get is a direct get, which any replica may answer, and a
// replica still catching up (a node just restarted) would call a live instance gone.
func (k *KV) lookup(ctx context.Context, name, service string) (entry kvEntry, gone bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, k.cfg.Heartbeat)
	defer cancel()
	msg, err := k.leaderGet(lctx, name)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		k.ok()
		return kvEntry{}, true, nil
	}
	if err != nil {
		k.failed("read")
		return kvEntry{}, false, err
	}
	k.ok()
	var inst discovery.Instance
	created := msg.Time.Add(-time.Duration(k.skew.Load()))
	expires := created.Add(3 * k.cfg.Heartbeat)
	if msg.Header.Get("KV-Operation") != "" || json.Unmarshal(msg.Data, &inst) != nil || inst.Service != service || !expires.After(time.Now()) {
		return kvEntry{}, true, nil // withdrawn, or last written three heartbeats ago
	}
	return kvEntry{inst: inst, expires: expires}, false, nil
}

// leaderGet reads the last message of a key from the stream's leader (the
// JetStream API's message get, not a direct get).
func (k *KV) leaderGet(ctx context.Context, name string) (*jetstream.RawStreamMsg, error) {
	stream := "KV_" + k.cfg.Bucket
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + k.cfg.Bucket + "." + name})
	reply, err := k.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
		Msg   *struct {
			Header []byte    `json:"hdrs"`
			Data   []byte    `json:"data"`
			Time   time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("natskv: read %s: %w", name, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Msg == nil:
		return nil, fmt.Errorf("natskv: read %s: an empty answer", name)
	}
	out := &jetstream.RawStreamMsg{Data: resp.Msg.Data, Time: resp.Msg.Time}
	if len(resp.Msg.Header) > 0 {
		if out.Header, err = nats.DecodeHeadersMsg(resp.Msg.Header); err != nil {
			return nil, fmt.Errorf("natskv: read %s: %w", name, err)
		}
	}
	return out, nil
}

// measureSkew estimates how far the server's clock is ahead of ours, by writing a key
// and reading back the time the server stamped on it.
func (k *KV) measureSkew(ctx context.Context) error {
	key := "_clock." + discovery.NewID()
	before := time.Now()
	if _, err := k.bucket.Put(ctx, key, nil); err != nil {
		return err
	}
	after := time.Now()
	// In a cluster, any replica answers a read (a direct get), and a follower may not
	// hold the write yet: read again, briefly, until it does.
	var e jetstream.KeyValueEntry
	var err error
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		e, err = k.bucket.Get(ctx, key)
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
	_ = k.bucket.Purge(ctx, key)
	k.skew.Store(int64(e.Created().Sub(before.Add(after.Sub(before) / 2))))
	return nil
}

func byID(a, b discovery.Instance) int { return strings.Compare(a.ID, b.ID) }
