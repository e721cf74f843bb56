package saga_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
)

// The test binary doubles as an orchestrator process: with SAGA_CHILD set it starts
// sagas, one every few milliseconds, until it is killed.
func TestMain(m *testing.M) {
	if url := os.Getenv("SAGA_CHILD"); url != "" {
		os.Exit(child(url))
	}
	os.Exit(m.Run())
}

func slowWorld(db *store.DB) saga.Definition[trip] {
	w := newWorld(db)
	def := w.definition(time.Minute)
	for i := range def.Steps {
		do := def.Steps[i].Do
		def.Steps[i].Do = func(ctx context.Context, d *trip) error {
			time.Sleep(10 * time.Millisecond)
			if def.Steps[i].Name == "pay" && strings.HasPrefix(d.Traveller, "r") {
				return saga.Fail("card declined")
			}
			return do(ctx, d)
		}
	}
	return def
}

func child(url string) int {
	db, err := store.Open(context.Background(), store.Config{URL: url})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	o, err := saga.New(db, slowWorld(db), saga.Config[trip]{Owner: "child", Lease: 500 * time.Millisecond, OnTransition: historyHook})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	go o.Run(context.Background())
	for i := 0; ; i++ {
		id := fmt.Sprint("t", i)
		if i%4 == 0 {
			id = fmt.Sprint("r", i)
		}
		if err := o.Start(context.Background(), id, trip{Traveller: id}, nil); err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
		fmt.Println("STARTED", id)
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSagasOfAKilledProcessAreFinishedByAnother(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := openDB(t, url)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SAGA_CHILD="+url)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() && started < 60 {
			if line := sc.Text(); strings.HasPrefix(line, "STARTED") {
				started++
			} else {
				t.Fatalf("child: %s", line)
			}
		}
		cmd.Process.Kill() // kill -9, mid-step for some sagas
		cmd.Wait()
		var unfinished int
		db.QueryRow(`SELECT count(*) FROM sagas WHERE status IN ('running', 'compensating')`).Scan(&unfinished)
		t.Logf("killed after %d sagas started; %d unfinished", started, unfinished)
		if unfinished == 0 {
			t.Fatal("the kill found every saga finished; nothing to take over")
		}

		begun := time.Now()
		o := orchestrator(t, db, slowWorld(db), saga.Config[trip]{Owner: "survivor", Scan: 50 * time.Millisecond})
		for {
			db.QueryRow(`SELECT count(*) FROM sagas WHERE status IN ('running', 'compensating')`).Scan(&unfinished)
			if unfinished == 0 {
				break
			}
			if time.Since(begun) > 15*time.Second {
				t.Fatalf("%d sagas still unfinished 15s after the kill", unfinished)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("all taken over and finished %v after the kill (lease 500ms)", time.Since(begun).Round(time.Millisecond))
		_ = o

		rows, err := db.Query(`SELECT id, status FROM sagas`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, status string
			rows.Scan(&id, &status)
			var effects, undone int
			db.QueryRow(`SELECT count(*), coalesce(sum(undone), 0) FROM effects WHERE saga = $1`, id).Scan(&effects, &undone)
			switch {
			case strings.HasPrefix(id, "r") && (status != "compensated" || undone != effects):
				t.Errorf("%s: %s with %d of %d effects undone, want compensated, all undone", id, status, undone, effects)
			case strings.HasPrefix(id, "t") && (status != "done" || effects != 4 || undone != 0):
				t.Errorf("%s: %s with %d effects (%d undone), want done with 4", id, status, effects, undone)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	})
}
