package simulate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/store"
)

// The journal keeps a simulated service's database as busy as the code it stands
// for, no busier. An exchange that publishes events commits its row with them, in
// the request, before the answer — the outbox's guarantee. One that publishes
// nothing (a read, a failure, a stream) is what a real read is: no transaction of
// its own. Its row joins the next batch the journal writes — what arrives within
// journalLinger of the first, up to journalBatch rows, in one transaction; a full
// queue makes the request write its row itself, so a row is never dropped for want
// of room.
const (
	journalQueue  = 4096
	journalBatch  = 512
	journalLinger = 50 * time.Millisecond
)

type journal struct {
	db   *store.DB
	sim  *sim
	rows chan row
}

func newJournal(s *sim) *journal {
	return &journal{db: s.db, sim: s, rows: make(chan row, journalQueue)}
}

// add records r: in the next batch, or now when the queue is full.
func (j *journal) add(ctx context.Context, r row) {
	select {
	case j.rows <- r:
	default:
		j.write(ctx, []row{r})
	}
}

// run writes batches until ctx ends, then what is left: the process runs it after
// the server and the consumers have stopped, so nothing is added after it.
func (j *journal) run(ctx context.Context) error {
	batch := make([]row, 0, journalBatch)
	for {
		select {
		case r := <-j.rows:
			batch = append(batch[:0], r)
		case <-ctx.Done():
			j.drain(batch[:0])
			return nil
		}
		// Rows come one request at a time: gather what comes within journalLinger
		// into one transaction.
		linger := time.NewTimer(journalLinger)
	gather:
		for len(batch) < journalBatch {
			select {
			case r := <-j.rows:
				batch = append(batch, r)
			case <-linger.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		linger.Stop()
		j.write(ctx, batch)
	}
}

func (j *journal) drain(batch []row) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		select {
		case r := <-j.rows:
			if batch = append(batch, r); len(batch) == journalBatch {
				j.write(ctx, batch)
				batch = batch[:0]
			}
		default:
			if len(batch) > 0 {
				j.write(ctx, batch)
			}
			return
		}
	}
}

// write commits a batch; a database refusing it changes no answer (the requests
// were answered), so it is logged, with how many rows it held.
func (j *journal) write(ctx context.Context, batch []row) {
	ctx = context.WithoutCancel(ctx) // the rows are owed whatever stopped the caller
	err := j.db.InTx(ctx, func(tx *sql.Tx) error {
		// A statement of many rows costs the database little more than one of a
		// single row; a few fixed sizes keep the prepared statements few.
		now := store.Millis(time.Now())
		for len(batch) > 0 {
			n := 1
			for _, size := range insertSizes {
				if len(batch) >= size {
					n = size
					break
				}
			}
			args := make([]any, 0, 6*n)
			for _, r := range batch[:n] {
				args = append(args, r.id, r.kind, r.name, r.status, float64(r.took.Microseconds())/1000, now)
			}
			if _, err := tx.ExecContext(ctx, insertStatements[j.db.Dialect()][n], args...); err != nil {
				return err
			}
			batch = batch[n:]
		}
		return nil
	})
	if err != nil {
		j.sim.p.Log.Warn("record simulated exchanges", "rows", len(batch), "error", err)
	}
}

// insertSizes are the numbers of rows one INSERT of the journal carries.
var insertSizes = []int{64, 16, 4, 1}

// insertStatements are the journal's INSERTs by dialect and size. SQLite's are
// positional (?): its driver resolves each numbered parameter by name, a cost
// that grows with the statement.
var insertStatements = func() map[store.Dialect]map[int]string {
	out := map[store.Dialect]map[int]string{}
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		out[d] = map[int]string{}
		for _, n := range insertSizes {
			var b strings.Builder
			b.WriteString("INSERT INTO simulated (id, kind, name, status, took_ms, at) VALUES ")
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				if d == store.SQLite {
					b.WriteString("(?, ?, ?, ?, ?, ?)")
					continue
				}
				k := 6 * i
				fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d)", k+1, k+2, k+3, k+4, k+5, k+6)
			}
			out[d][n] = b.String()
		}
	}
	return out
}()
