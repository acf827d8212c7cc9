package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"

	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// batcher pre-aggregates the input partitions this instance owns into
// offset-aligned batches and sends their snapshots to the snapshots topic,
// keyed by statistic name.
//
// Batch b of partition p holds the records with offsets in [b·N, (b+1)·N).
// While it is open, a snapshot of its cumulative aggregate is sent whenever
// it has news and the previous one is acknowledged (flush); when the first
// record of a later batch arrives, a final snapshot closes it. Once Kafka
// has acknowledged every statistic's final snapshot and every rejected
// record of the batch, offset (b+1)·N is committed. No other input offset
// is ever committed, so whoever owns p next restarts at a batch boundary
// and forms the very same batches; table.Value.Apply makes repeated and
// stale snapshots harmless.
type batcher struct {
	kinds   []stats.Kind
	all     []int         // 0 … len(kinds)-1: every kind, as final snapshots carry them
	fast    int           // kinds[:fast] are the plain statistics, the windowed rest is snapshotted less often (flush)
	large   []atomic.Bool // kinds[i]'s last snapshot was larger than largeSnapshot
	size    int64         // N, records per batch
	out     outputs
	logger  *slog.Logger
	metrics *Metrics // nil: not counted (tests)

	mu    sync.RWMutex
	parts map[int32]*ownedPartition
	news  chan struct{} // a partition has news and no open snapshot in flight: flush now
}

// outputs are where a batcher's results go.
type outputs struct {
	snapshots string                                           // the snapshots topic
	producer  goka.Producer                                    // sends snapshots, in order
	forward   func(key string, value []byte, done func(error)) // sends a rejected record
	commit    func(p int32, offset int64)                      // commits an input offset; called in offset order per partition, must not block
	fail      func(error)                                      // a snapshot or rejected record was not stored: stop
}

// newBatcher returns a batcher of kinds into batches of size offsets,
// counted in metrics (nil: not counted). Open batches of kinds[:fast] are
// snapshotted at every flush, those of the rest (windowed statistics,
// whose table values are larger) only at the flushes run marks as full.
func newBatcher(kinds []stats.Kind, fast int, size int64, out outputs, metrics *Metrics, logger *slog.Logger) *batcher {
	all := make([]int, len(kinds))
	for i := range all {
		all[i] = i
	}
	return &batcher{kinds: kinds, all: all, fast: fast, large: make([]atomic.Bool, len(kinds)), size: size, out: out, metrics: metrics,
		logger: logger, parts: map[int32]*ownedPartition{}, news: make(chan struct{}, 1)}
}

// ownedPartition is the open batch of one input partition this instance
// owns.
type ownedPartition struct {
	id        int32
	committed int64 // where this owner started reading; negative if unknown

	mu    sync.Mutex // held while snapshots are sent, so they leave in order
	batch int64      // open batch, table.NoBatch before the first record
	prev  int64
	last  int64
	hwm   int64 // the partition's high watermark at the last fetch
	aggs  *stats.Set
	open  *pendingBatch
	// adds counts the records added; carried[i], how many of them the
	// last snapshot of plain kind i carried (so kind i has news while they
	// differ, whether it was large or small when it was last sent).
	adds            int64
	carried         []int64
	slow            bool        // the windowed kinds have news
	full            bool        // a full flush is due: the next open snapshot includes the windowed kinds
	sent, sentLarge time.Time   // when the last open snapshot was sent; the last with a large kind
	busy            atomic.Bool // an open snapshot is not yet acknowledged

	pendMu  sync.Mutex // never held while sending: acks arrive on the producers' goroutines
	pending []*pendingBatch
}

// pendingBatch counts what must be acknowledged before a batch's end may be
// committed: one guard while the batch is open, its rejected records, and
// the final snapshot of every statistic.
type pendingBatch struct {
	batch int64
	acks  atomic.Int64
}

// assign starts partitions afresh from their committed offsets (negative
// if there is none).
func (b *batcher) assign(committed map[int32]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p, off := range committed {
		b.parts[p] = &ownedPartition{id: p, committed: off, batch: table.NoBatch, carried: make([]int64, b.fast)}
	}
}

// revoke drops the open batches of partitions this instance lost; their
// next owner rebuilds them from the last committed boundary.
func (b *batcher) revoke(parts []int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range parts {
		delete(b.parts, p)
	}
}

func (b *batcher) owned(p int32) *ownedPartition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.parts[p]
}

// owns reports whether st is still the state of an owned partition.
func (b *batcher) owns(st *ownedPartition) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.parts[st.id] == st
}

// adder folds the record at offset into its batch, closing the open batch
// first if the record belongs to a later one. A rejected record is
// forwarded as (key, value) to the rejected topic, as part of its batch.
// rec is not kept: callers reuse one Record, since a Record passed by
// address to the statistics would otherwise be allocated per record.
type adder func(offset int64, rec *stats.Record, rejectKey string, rejectValue []byte)

// addAll calls fill with an adder for partition p, which fill calls for
// records of p in offset order; hwm is the partition's high watermark as
// the fetch reported it. The partition stays locked while fill runs: one
// lock per fetched partition rather than per record keeps the cores that
// handle other partitions off shared cache lines.
func (b *batcher) addAll(p int32, hwm int64, fill func(add adder)) {
	st := b.owned(p)
	if st == nil {
		// Not assigned (any more): its owner reads it. Starting a batch
		// here, mid-way, would send snapshots of part of a batch.
		b.logger.Warn("dropping records of a partition this instance does not own", "partition", p)
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.hwm = hwm
	before := st.adds
	fill(func(offset int64, rec *stats.Record, rejectKey string, rejectValue []byte) {
		b.add(st, offset, rec, rejectKey, rejectValue)
	})
	if st.adds != before && !st.busy.Load() {
		b.poke()
	}
}

// poke asks run to flush now.
func (b *batcher) poke() {
	select {
	case b.news <- struct{}{}:
	default: // a flush is asked for already
	}
}

// add is an adder for st; st.mu is held.
func (b *batcher) add(st *ownedPartition, offset int64, rec *stats.Record, rejectKey string, rejectValue []byte) {
	batch := offset / b.size
	switch {
	case st.batch == table.NoBatch:
		// The batch before the first offset read counts as closed by
		// whoever committed that offset (or as nothing, at the very start).
		from := offset
		if st.committed >= 0 {
			from = st.committed
		}
		b.begin(st, batch, from/b.size-1)
	case batch > st.batch:
		b.finalise(st)
		b.begin(st, batch, st.batch)
	case batch < st.batch:
		b.out.fail(at(st.id, st.batch, offset, fmt.Errorf("partition %d went back from batch %d to offset %d", st.id, st.batch, offset)))
		return
	}
	st.aggs.Add(rec)
	st.last, st.slow = offset, true
	st.adds++
	if rec.Rejected != "" {
		pb := st.open
		pb.acks.Add(1)
		b.out.forward(rejectKey, rejectValue, func(err error) {
			if err != nil {
				b.out.fail(at(st.id, offset/b.size, offset, fmt.Errorf("rejected record %s not forwarded: %w", rejectKey, err)))
				return
			}
			b.ack(st, pb)
		})
	}
}

// begin starts batch of st; st.mu is held.
func (b *batcher) begin(st *ownedPartition, batch, prev int64) {
	st.batch, st.prev = batch, prev
	st.aggs = stats.NewSet(b.kinds)
	pb := &pendingBatch{batch: batch}
	pb.acks.Store(1) // the guard: released when the batch closes
	st.open = pb
	st.pendMu.Lock()
	st.pending = append(st.pending, pb)
	st.pendMu.Unlock()
}

// finalise sends the final snapshot of st's open batch, which closes it;
// st.mu is held.
func (b *batcher) finalise(st *ownedPartition) {
	if b.metrics != nil {
		b.metrics.part(st.id).batchClosed(b.metrics)
	}
	pb := st.open
	pb.acks.Add(int64(len(b.kinds)))
	b.send(st, true, b.all, func(err error) {
		if err != nil {
			b.out.fail(at(st.id, pb.batch, -1, fmt.Errorf("final snapshot of partition %d batch %d not stored: %w", st.id, pb.batch, err)))
			return
		}
		b.ack(st, pb)
	})
	b.ack(st, pb) // release the guard
}

func (b *batcher) ack(st *ownedPartition, pb *pendingBatch) {
	if pb.acks.Add(-1) == 0 {
		b.commitAcknowledged(st)
	}
}

// flush sends a snapshot of every open batch that changed since the last
// and whose last open snapshot is acknowledged and at least gap old,
// unless its partition is at least a batch behind its high watermark: then
// the batch closes soon anyway, and open snapshots of a backlog would only
// load the table stage with values that are replaced at once.
//
// Waiting for the acknowledgement coalesces the records that arrive
// meanwhile into the next snapshot; gap bounds how many snapshots a
// partition sends a second when acknowledgements come fast. Each one
// carries the small plain statistics; those whose last snapshot was larger
// than largeSnapshot (per-picture state) at most every largeInterval, as
// every snapshot rewrites their whole table value; the windowed ones only
// from a full flush on.
func (b *batcher) flush(full bool, gap time.Duration) {
	b.mu.RLock()
	parts := make([]*ownedPartition, 0, len(b.parts))
	for _, st := range b.parts {
		parts = append(parts, st)
	}
	b.mu.RUnlock()
	now := time.Now()
	for _, st := range parts {
		st.mu.Lock()
		st.full = st.full || full // kept until a snapshot goes: a busy partition must not starve the windows
		if st.hwm-st.last-1 < b.size && !st.busy.Load() && now.Sub(st.sent) >= gap {
			b.sendOpen(st, now)
		}
		st.mu.Unlock()
	}
}

// sendOpen sends the open snapshot of st's kinds that are due; st.mu is
// held.
func (b *batcher) sendOpen(st *ownedPartition, now time.Time) {
	largeDue := now.Sub(st.sentLarge) >= largeInterval
	var which []int
	for i := range b.kinds[:b.fast] {
		if st.carried[i] != st.adds && (largeDue || !b.large[i].Load()) {
			which = append(which, i)
			st.carried[i] = st.adds
		}
	}
	windowed := st.full && st.slow
	if windowed {
		which = append(which, b.all[b.fast:]...)
	}
	if len(which) == 0 {
		return
	}
	if b.metrics != nil {
		b.metrics.openFlushes.Inc()
	}
	batch, left := st.batch, new(atomic.Int64)
	left.Store(int64(len(which)))
	st.busy.Store(true)
	st.sent = now
	if windowed {
		st.slow, st.full = false, false
	}
	b.send(st, false, which, func(err error) {
		if err != nil {
			b.out.fail(at(st.id, batch, -1, fmt.Errorf("snapshot of partition %d not stored: %w", st.id, err)))
			return
		}
		if left.Add(-1) == 0 {
			st.busy.Store(false)
			b.poke() // news that came meanwhile goes now
		}
	})
	for _, i := range which { // send has classified them by this snapshot's size
		if i < b.fast && b.large[i].Load() {
			st.sentLarge = now
			break
		}
	}
}

// A plain statistic whose snapshot is larger than largeSnapshot bytes is
// snapshotted at most every largeInterval (what every snapshot was before
// they followed acknowledgements): at 200 records/s, per-picture
// statistics were 87% of the table's changelog bytes.
const (
	largeSnapshot = 512
	largeInterval = 20 * time.Millisecond
)

// send emits one snapshot per statistic of st's open batch, of the kinds
// which lists; st.mu is held.
func (b *batcher) send(st *ownedPartition, final bool, which []int, done func(error)) {
	if m := b.metrics; m != nil { // time the whole snapshot: until its last statistic is acknowledged
		start, left, inner := time.Now(), new(atomic.Int64), done
		left.Store(int64(len(which)))
		done = func(err error) {
			if left.Add(-1) == 0 {
				m.snapshotSend.Observe(time.Since(start).Seconds())
			}
			inner(err)
		}
	}
	aggs := st.aggs.Stats()
	for _, i := range which {
		k := b.kinds[i]
		agg, err := k.Encode(aggs[i])
		if err != nil {
			b.out.fail(err)
			return
		}
		if i < b.fast {
			b.large[i].Store(len(agg) > largeSnapshot)
		}
		msg, _ := table.Snapshot{Partition: st.id, Batch: st.batch, Prev: st.prev, Last: st.last, Final: final, Agg: agg}.MarshalBinary()
		b.out.producer.Emit(b.out.snapshots, k.Name, msg).Then(done)
	}
	if final {
		for i := range st.carried {
			st.carried[i] = st.adds
		}
		st.slow, st.full = false, false
	}
}

// commitAcknowledged commits the boundary after the last batch whose
// acknowledgements are all in, in batch order.
//
// Acknowledgements arrive on several goroutines at once (the snapshot
// producer's for snapshots, franz-go's for rejected records), so the
// commit is handed on while pendMu is still held: two callers compute
// their boundaries in order under the lock, and had they handed them on
// after it, the lower one could overtake the higher and the partition's
// committed offset go back. b.commit must not block for long.
func (b *batcher) commitAcknowledged(st *ownedPartition) {
	st.pendMu.Lock()
	defer st.pendMu.Unlock()
	commit := int64(-1)
	for len(st.pending) > 0 && st.pending[0].acks.Load() == 0 {
		commit = (st.pending[0].batch + 1) * b.size
		st.pending = st.pending[1:]
	}
	if commit >= 0 && b.owns(st) { // a lost partition's new owner commits for itself
		b.out.commit(st.id, commit)
	}
}

// run flushes open batches when a partition has news (see flush), and
// every interval, fully at least every fullInterval, until stop is closed,
// storing the time of each round (unix ns) in beat, the watchdog's input.
func (b *batcher) run(interval, fullInterval time.Duration, stop <-chan struct{}, beat *atomic.Int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	defer beat.Store(0)
	every := max(1, int(fullInterval/interval))
	for tick := 1; ; {
		beat.Store(time.Now().UnixNano())
		select {
		case <-stop:
			return
		case <-b.news:
			b.flush(false, interval)
		case <-t.C:
			b.flush(tick%every == 0, interval)
			tick++
		}
	}
}

var errBatcherFailed = errors.New("snapshot batcher failed")

// positionError is an error of the input stage at a partition, batch and
// offset (-1: none), which the log line of a failure carries as the keys
// partition, batch and offset.
type positionError struct {
	partition     int32
	batch, offset int64
	err           error
}

func at(partition int32, batch, offset int64, err error) error {
	return &positionError{partition, batch, offset, err}
}

func (e *positionError) Error() string { return e.err.Error() }
func (e *positionError) Unwrap() error { return e.err }

// logAttrs are err's log attributes: err, and where it happened if known.
func logAttrs(err error) []any {
	attrs := []any{"err", err}
	var pe *positionError
	if errors.As(err, &pe) {
		attrs = append(attrs, "partition", pe.partition)
		if pe.batch >= 0 {
			attrs = append(attrs, "batch", pe.batch)
		}
		if pe.offset >= 0 {
			attrs = append(attrs, "offset", pe.offset)
		}
	}
	return attrs
}
