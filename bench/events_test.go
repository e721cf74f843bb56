package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
)

const benchType = "bench.order.placed.v1"

func benchRegistry(b *testing.B) *event.Registry {
	b.Helper()
	reg, err := event.NewRegistry(fstest.MapFS{benchType + ".json": {Data: []byte(`{
		"type": "object", "additionalProperties": false, "required": ["order_id", "amount_minor", "currency"],
		"properties": {"order_id": {"type": "string"}, "amount_minor": {"type": "integer", "minimum": 0}, "currency": {"type": "string"}}}`)}})
	if err != nil {
		b.Fatal(err)
	}
	return reg
}

// benchBroker is an embedded JetStream server with file storage as `up` runs it,
// except that it syncs on JetStream's default interval: fsync-per-write would make
// both contenders measure the disk, not the client.
func benchBroker(b *testing.B) *nats.Conn {
	b.Helper()
	srv, err := broker.Start(broker.Config{StoreDir: b.TempDir(), SyncInterval: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

func newEvent(b *testing.B, i int) event.Event {
	e, err := event.New(context.Background(), "/bench", benchType, "order-"+strconv.Itoa(i),
		map[string]any{"order_id": "order-" + strconv.Itoa(i), "amount_minor": 13900, "currency": "EUR"})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkPublish compares publishing an event through the bus (schema validation,
// encoding, de-duplication id) with raw nats.go publishing the same bytes with the
// same message id, to the same server, synchronously and pipelined.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	reg := benchRegistry(b)
	for _, mode := range []string{"sync", "async"} {
		b.Run("raw-nats.go/"+mode, func(b *testing.B) {
			nc := benchBroker(b)
			js, _ := jetstream.New(nc)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: natsbus.StreamName("bench"), Subjects: []string{"events.bench.>"}, Duplicates: 2 * time.Minute}); err != nil {
				b.Fatal(err)
			}
			payloads := make([][]byte, 0, 1024)
			ids := make([]string, 0, 1024)
			for i := range 1024 {
				e := newEvent(b, i)
				p, _ := event.Encode(&e)
				payloads, ids = append(payloads, p), append(ids, e.ID)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var futures []jetstream.PubAckFuture
			for i := range b.N {
				msg := nats.NewMsg("events.bench.order.placed")
				msg.Data = payloads[i%1024]
				msg.Header.Set(jetstream.MsgIDHeader, ids[i%1024]+strconv.Itoa(i))
				if mode == "sync" {
					if _, err := js.PublishMsg(ctx, msg); err != nil {
						b.Fatal(err)
					}
					continue
				}
				f, err := js.PublishMsgAsync(msg)
				if err != nil {
					b.Fatal(err)
				}
				futures = append(futures, f)
				if len(futures) == 256 {
					wait(b, futures)
					futures = futures[:0]
				}
			}
			wait(b, futures)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
		b.Run("switchyard-encoded/"+mode, func(b *testing.B) {
			// The relay's path: events validated and encoded when the outbox stored them.
			nc := benchBroker(b)
			bb, err := natsbus.New(nc, natsbus.Config{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			encoded := make([]bus.Encoded, 0, b.N)
			for i := range b.N {
				e := newEvent(b, i)
				p, _ := event.Encode(&e)
				encoded = append(encoded, bus.Encoded{ID: e.ID, Type: e.Type, Subject: e.Subject, Payload: p})
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if mode == "sync" {
				for i := range encoded {
					if err := bb.PublishEncoded(ctx, encoded[i]); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				for i := 0; i < len(encoded); i += 256 {
					if err := bb.PublishEncoded(ctx, encoded[i:min(i+256, len(encoded))]...); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
		b.Run("switchyard/"+mode, func(b *testing.B) {
			nc := benchBroker(b)
			bb, err := natsbus.New(nc, natsbus.Config{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			events := make([]event.Event, 0, b.N)
			for i := range b.N {
				events = append(events, newEvent(b, i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if mode == "sync" {
				for i := range events {
					if err := bb.Publish(ctx, events[i]); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				for i := 0; i < len(events); i += 256 {
					if err := bb.Publish(ctx, events[i:min(i+256, len(events))]...); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

func wait(b *testing.B, futures []jetstream.PubAckFuture) {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}

// BenchmarkOutboxToInbox measures events per second end to end: a producer commits
// events through its outbox (one transaction per 10 events, as a busy service
// would), the relay publishes them, and a consumer applies each once through its
// inbox (64 handlers, group commit) in its own database — on SQLite files and,
// when SWITCHYARD_TEST_POSTGRES names a server, PostgreSQL databases.
func BenchmarkOutboxToInbox(b *testing.B) {
	targets := []string{"sqlite"}
	if os.Getenv(storetest.PostgresEnv) != "" {
		targets = append(targets, "postgres")
	}
	for _, engine := range targets {
		b.Run(engine, func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			reg := benchRegistry(b)
			nc := benchBroker(b)
			bb, _ := natsbus.New(nc, natsbus.Config{Registry: reg})
			url := func(name string) string {
				if engine == "sqlite" {
					return "sqlite:" + filepath.Join(b.TempDir(), name+".db")
				}
				return storetest.PostgresDatabase(b, os.Getenv(storetest.PostgresEnv))
			}
			producer := openBenchDB(b, url("producer"), outbox.Migrations())
			consumer := openBenchDB(b, url("consumer"), inbox.Migrations())
			ob, _ := outbox.New(producer, outbox.Config{Name: "bench", Registry: reg})
			relay, _ := ob.Relay(outbox.RelayConfig{Bus: bb, Batch: 512})
			in, _ := inbox.New(consumer, nil)
			go in.RunGroupCommit(ctx, 64)
			var applied atomic.Int64
			go relay.Run(ctx)
			go bb.Subscribe(ctx, bus.Subscription{Group: "bench", Types: []string{benchType}, Concurrency: 64},
				in.Wrap("bench", func(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
					_, err := tx.ExecContext(ctx, `INSERT INTO applied (event_id) VALUES ($1)`, m.Event.ID)
					if err == nil {
						applied.Add(1)
					}
					return err
				}))
			events := make([]event.Event, b.N)
			for i := range events {
				events[i] = newEvent(b, i)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i += 10 {
				batch := events[i:min(i+10, b.N)]
				if err := producer.InTx(ctx, func(tx *sql.Tx) error { return ob.Add(ctx, tx, batch...) }); err != nil {
					b.Fatal(err)
				}
			}
			written := time.Since(start)
			for applied.Load() < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			b.ReportMetric(float64(b.N)/written.Seconds(), "written/s")
		})
	}
}

func openBenchDB(b *testing.B, url string, m store.Migrations) *store.DB {
	b.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: url, MaxOpenConns: 32, Migrations: fstest.MapFS{
		"00001_applied.sql": {Data: []byte("-- +goose Up\nCREATE TABLE applied (event_id TEXT PRIMARY KEY);\n")}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), m, nil); err != nil {
		b.Fatal(fmt.Errorf("migrate: %w", err))
	}
	return db
}
