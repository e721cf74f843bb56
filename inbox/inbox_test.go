package inbox_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
)

const typ = "ibtest.item.added.v1"

var schemas = fstest.MapFS{typ + ".json": {Data: []byte(`{"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}`)}}

var effects = fstest.MapFS{"00001_effects.sql": {Data: []byte("-- +goose Up\nCREATE TABLE effects (event_id TEXT PRIMARY KEY, n BIGINT NOT NULL);\n")}}

// The test binary doubles as a consumer process: with INBOX_CONSUMER set it consumes
// until killed, and on one event in ten it dies right after its transaction commits
// and before the broker hears the acknowledgement.
func TestMain(m *testing.M) {
	if os.Getenv("INBOX_CONSUMER") != "" {
		os.Exit(consumerProcess())
	}
	os.Exit(m.Run())
}

func crashesOn(id string) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%10 == 0
}

func open(ctx context.Context, url string) (*store.DB, *inbox.Inbox, error) {
	db, err := store.Open(ctx, store.Config{URL: url, Migrations: effects})
	if err != nil {
		return nil, nil, err
	}
	if err := db.Migrate(ctx, inbox.Migrations(), nil); err != nil {
		return nil, nil, err
	}
	in, err := inbox.New(db, nil)
	return db, in, err
}

func consumerProcess() int {
	ctx := context.Background()
	db, in, err := open(ctx, os.Getenv("INBOX_DB"))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	nc, err := nats.Connect(os.Getenv("INBOX_NATS"))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	reg, _ := event.NewRegistry(schemas)
	b, _ := natsbus.New(nc, natsbus.Config{Registry: reg})
	err = b.Subscribe(ctx, bus.Subscription{Group: "crashy", Types: []string{typ}, HandlerTimeout: 5 * time.Second},
		func(ctx context.Context, m *bus.Message) error {
			dup, err := in.Handle(ctx, "crashy", m, func(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
				var d struct{ N int }
				_ = m.Event.DecodeData(&d)
				_, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, n) VALUES ($1, $2)`, m.Event.ID, d.N)
				return err
			})
			if err != nil {
				// An ambiguous commit: the client gave up (its deadline passed) while the
				// database committed. The redelivery will be a duplicate, so a planned
				// crash for this event can no longer happen; say so.
				var c int
				_ = db.QueryRowContext(context.Background(), `SELECT count(*) FROM effects WHERE event_id = $1`, m.Event.ID).Scan(&c)
				if c == 1 && crashesOn(m.Event.ID) {
					fmt.Println("LATE", m.Event.ID)
				}
				return err
			}
			if dup {
				fmt.Println("DUP", m.Event.ID, m.Attempt)
				return nil
			}
			if crashesOn(m.Event.ID) {
				fmt.Println("CRASH", m.Event.ID) // committed, not yet acknowledged
				os.Exit(3)
			}
			return nil
		})
	fmt.Println("ERROR", err)
	return 1
}

// The consumer process dies between commit and acknowledgement on one event in ten:
// every event's effect still happens exactly once, and the redeliveries are seen and
// skipped.
func TestACrashBetweenCommitAndAckAppliesEffectsOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		natsURL := brokertest.Embedded(t)
		db, _, err := open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		nc := brokertest.Connect(t, natsURL)
		reg, _ := event.NewRegistry(schemas)
		b, _ := natsbus.New(nc, natsbus.Config{Registry: reg})
		const n = 200
		var batch []event.Event
		willCrash := 0
		for i := range n {
			e, _ := event.New(ctx, "/test", typ, fmt.Sprintf("item-%d", i), map[string]int{"n": i})
			if crashesOn(e.ID) {
				willCrash++
			}
			batch = append(batch, e)
		}
		if err := b.Publish(ctx, batch...); err != nil {
			t.Fatal(err)
		}

		var mu sync.Mutex
		crashes, late, dups := 0, 0, 0
		count := func() int {
			var c int
			_ = db.QueryRow("SELECT count(*) FROM effects").Scan(&c)
			return c
		}
		finished := func() bool {
			mu.Lock()
			defer mu.Unlock()
			// Every event applied, every planned crash happened, and each crashed
			// event came back (extra redeliveries happen too: an acknowledgement still
			// buffered in the client dies with the process).
			return count() >= n && crashes+late >= willCrash && dups >= willCrash
		}
		deadline := time.Now().Add(90 * time.Second)
		for !finished() {
			if time.Now().After(deadline) {
				mu.Lock()
				t.Fatalf("after 90s: %d of %d effects, %d+%d late of %d crashes, %d redeliveries skipped", count(), n, crashes, late, willCrash, dups)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "INBOX_CONSUMER=1", "INBOX_DB="+url, "INBOX_NATS="+natsURL)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					line := sc.Text()
					mu.Lock()
					switch {
					case strings.HasPrefix(line, "CRASH"):
						crashes++
					case strings.HasPrefix(line, "LATE"):
						late++
					case strings.HasPrefix(line, "DUP"):
						dups++
					case strings.HasPrefix(line, "ERROR"):
						t.Errorf("consumer: %s", line)
					}
					mu.Unlock()
				}
			}()
			// Wait only after every line is read: Wait closes the pipe, and a CRASH
			// line still in it would be lost.
			exited := make(chan struct{})
			go func() { <-stopped; cmd.Wait(); close(exited) }()
			for done := false; !done; {
				select {
				case <-exited:
					done = true
				case <-time.After(100 * time.Millisecond):
					if finished() || time.Now().After(deadline) {
						cmd.Process.Kill()
						<-exited
						done = true
					}
				}
			}
		}
		var distinct, total int
		db.QueryRow("SELECT count(DISTINCT n), count(*) FROM effects").Scan(&distinct, &total)
		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d events, %d crashes after commit and %d ambiguous commits (expected %d together), %d redeliveries skipped by the inbox", n, crashes, late, willCrash, dups)
		if total != n || distinct != n {
			t.Errorf("%d effects (%d distinct), want exactly %d", total, distinct, n)
		}
		if crashes+late != willCrash || crashes == 0 {
			t.Errorf("%d crashes and %d ambiguous commits, want %d together", crashes, late, willCrash)
		}
		if dups < crashes+late {
			t.Errorf("%d redeliveries skipped, want at least one per crash (%d)", dups, crashes)
		}
	})
}

func TestAFailedHandlerLeavesNoRecord(t *testing.T) {
	db, in, err := open(context.Background(), storetest.Targets(t)[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, _ := event.New(context.Background(), "/t", typ, "s", map[string]int{"n": 1})
	msg := &bus.Message{Event: e}
	calls := 0
	fn := func(ctx context.Context, tx *sql.Tx, _ *bus.Message) error {
		calls++
		if _, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, n) VALUES ($1, 1)`, e.ID); err != nil {
			return err
		}
		if calls == 1 {
			return fmt.Errorf("downstream hiccup")
		}
		return nil
	}
	if _, err := in.Handle(context.Background(), "c", msg, fn); err == nil {
		t.Fatal("the failure was swallowed")
	}
	dup, err := in.Handle(context.Background(), "c", msg, fn)
	if err != nil || dup || calls != 2 {
		t.Fatalf("retry: dup %v, err %v, calls %d", dup, err, calls)
	}
	dup, _ = in.Handle(context.Background(), "c", msg, fn)
	if !dup || calls != 2 {
		t.Errorf("a third delivery ran the handler (calls %d)", calls)
	}
	// Another consumer of the same event is not a duplicate.
	if dup, _ := in.Handle(context.Background(), "other", msg, func(context.Context, *sql.Tx, *bus.Message) error { return nil }); dup {
		t.Error("one consumer's record blocked another")
	}
	if n, err := in.Prune(context.Background(), -time.Minute); err != nil || n != 2 {
		t.Errorf("pruned %d, %v; want 2", n, err)
	}
}

// With group commit, concurrent handlers share transactions; a failing one rolls
// back alone, a duplicate inside a batch is still a duplicate, and stopping leaves
// no handler waiting.
func TestGroupCommitKeepsEachEventsOutcomeItsOwn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		db, in, err := open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		go func() { stopped <- in.RunGroupCommit(ctx, 32) }()
		time.Sleep(10 * time.Millisecond)

		const n = 200
		events := make([]event.Event, n)
		for i := range events {
			events[i], _ = event.New(context.Background(), "/t", typ, "s", map[string]int{"n": i})
		}
		fn := func(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
			var d struct{ N int }
			_ = m.Event.DecodeData(&d)
			if _, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, n) VALUES ($1, $2)`, m.Event.ID, d.N); err != nil {
				return err
			}
			if d.N%17 == 0 {
				return fmt.Errorf("event %d fails", d.N) // after writing: the savepoint must undo it
			}
			return nil
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed, dups := 0, 0
		for round := range 2 { // the second round is all duplicates (or retries of the failures)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dup, err := in.Handle(context.Background(), "g", &bus.Message{Event: events[i]}, fn)
					mu.Lock()
					defer mu.Unlock()
					if err != nil && round == 0 {
						failed++
					}
					if dup {
						dups++
					}
				}()
			}
			wg.Wait()
		}
		var effects int
		db.QueryRow("SELECT count(*) FROM effects").Scan(&effects)
		wantFailed := (n + 16) / 17
		if failed != wantFailed || effects != n-wantFailed || dups != n-wantFailed {
			t.Errorf("failed %d (want %d), effects %d (want %d), duplicates %d", failed, wantFailed, effects, n-wantFailed, dups)
		}
		cancel()
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		// After stopping, handling goes on, a transaction each.
		e, _ := event.New(context.Background(), "/t", typ, "s", map[string]int{"n": 1000})
		if _, err := in.Handle(context.Background(), "g", &bus.Message{Event: e}, fn); err != nil {
			t.Errorf("after group commit stopped: %v", err)
		}
	})
}
