package processor

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/picstats/picstats/stats"
)

// batcher pre-aggregates the input partitions this instance owns into
// offset-aligned batches and sends their snapshots through the loop topic.
//
// Batch b of partition p holds the records with offsets in [b·N, (b+1)·N).
// While it is open, a snapshot of its cumulative aggregate is sent every
// interval (if anything changed); when the first record of a later batch
// arrives, a final snapshot closes it, and once every statistic's final
// snapshot is acknowledged by Kafka, offset (b+1)·N is committed. No other
// input offset is ever committed, so whoever owns p next restarts at a batch
// boundary and forms the very same batches. Apply (table.go) makes repeated
// and stale snapshots harmless.
type batcher struct {
	kinds    []stats.Kind
	size     int64 // N, records per batch
	input    string
	loop     string
	producer goka.Producer
	fail     func(error)
	logger   *slog.Logger

	mu      sync.RWMutex
	session sarama.ConsumerGroupSession // the real one; nil between sessions
	gen     uint64                      // counts sessions, so old acks commit nothing
	parts   map[int32]*partition
}

// partition is the open batch of one input partition.
type partition struct {
	id      int32
	gen     uint64
	initial int64 // the claim's first offset; negative if unknown

	mu    sync.Mutex // held while snapshots are sent, so they leave in order
	batch int64      // open batch, noBatch before the first record
	prev  int64
	last  int64
	aggs  []stats.Stat
	dirty bool

	pendMu  sync.Mutex // never held while sending: acks arrive on the producer's goroutine
	pending []*pendingFinal
}

type pendingFinal struct {
	batch int64
	acks  atomic.Int32 // statistics whose final snapshot is not acknowledged yet
}

// startSession begins a consumer-group session: every partition starts
// afresh from its committed offset.
func (b *batcher) startSession(s sarama.ConsumerGroupSession) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	b.session = s
	b.parts = map[int32]*partition{}
}

// endSession drops all open batches; the next owner rebuilds them from the
// last committed boundary.
func (b *batcher) endSession() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	b.session = nil
	b.parts = nil
}

// claim records where the session starts reading partition p.
func (b *batcher) claim(p int32, initial int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.parts != nil {
		b.parts[p] = b.newPartition(p, initial)
	}
}

func (b *batcher) newPartition(p int32, initial int64) *partition {
	return &partition{id: p, gen: b.gen, initial: initial, batch: noBatch}
}

func (b *batcher) partition(p int32) *partition {
	b.mu.RLock()
	st := b.parts[p]
	b.mu.RUnlock()
	if st != nil {
		return st
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.parts == nil {
		b.parts = map[int32]*partition{}
	}
	if st = b.parts[p]; st == nil {
		st = b.newPartition(p, -1)
		b.parts[p] = st
	}
	return st
}

// add folds the record at offset of partition p into its batch, closing the
// open batch first if the record belongs to a later one.
func (b *batcher) add(p int32, offset int64, rec stats.Record) {
	st := b.partition(p)
	st.mu.Lock()
	defer st.mu.Unlock()
	batch := offset / b.size
	switch {
	case st.batch == noBatch:
		// The batch before the first offset read counts as closed by
		// whoever committed that offset (or as nothing, at the very start).
		from := offset
		if st.initial >= 0 {
			from = st.initial
		}
		st.batch, st.prev = batch, from/b.size-1
		st.aggs = newAggs(b.kinds)
	case batch > st.batch:
		b.close(st)
		st.prev, st.batch = st.batch, batch
		st.aggs = newAggs(b.kinds)
	case batch < st.batch:
		b.fail(fmt.Errorf("partition %d went back from batch %d to offset %d", p, st.batch, offset))
		return
	}
	for _, a := range st.aggs {
		a.Add(rec)
	}
	st.last, st.dirty = offset, true
}

func newAggs(kinds []stats.Kind) []stats.Stat {
	aggs := make([]stats.Stat, len(kinds))
	for i, k := range kinds {
		aggs[i] = k.New()
	}
	return aggs
}

// close sends the final snapshot of st's open batch; st.mu is held.
func (b *batcher) close(st *partition) {
	pf := &pendingFinal{batch: st.batch}
	pf.acks.Store(int32(len(b.kinds)))
	st.pendMu.Lock()
	st.pending = append(st.pending, pf)
	st.pendMu.Unlock()
	b.send(st, true, func(err error) {
		if err != nil {
			b.fail(fmt.Errorf("final snapshot of partition %d batch %d not stored: %w", st.id, pf.batch, err))
			return
		}
		if pf.acks.Add(-1) == 0 {
			b.commitAcknowledged(st)
		}
	})
}

// flush sends a snapshot of every open batch that changed since the last.
func (b *batcher) flush() {
	b.mu.RLock()
	parts := make([]*partition, 0, len(b.parts))
	for _, st := range b.parts {
		parts = append(parts, st)
	}
	b.mu.RUnlock()
	for _, st := range parts {
		st.mu.Lock()
		if st.dirty {
			b.send(st, false, func(err error) {
				if err != nil {
					b.fail(fmt.Errorf("snapshot of partition %d not stored: %w", st.id, err))
				}
			})
		}
		st.mu.Unlock()
	}
}

// send emits one snapshot per statistic of st's open batch; st.mu is held.
func (b *batcher) send(st *partition, final bool, done func(error)) {
	for i, k := range b.kinds {
		agg, err := k.Encode(st.aggs[i])
		if err != nil {
			b.fail(err)
			return
		}
		msg, _ := Snapshot{Partition: st.id, Batch: st.batch, Prev: st.prev, Last: st.last, Final: final, Agg: agg}.MarshalBinary()
		b.producer.Emit(b.loop, k.Name, msg).Then(done)
	}
	st.dirty = false
}

// commitAcknowledged commits the boundary after the last batch whose final
// snapshots are all acknowledged, in batch order.
func (b *batcher) commitAcknowledged(st *partition) {
	st.pendMu.Lock()
	commit := int64(-1)
	for len(st.pending) > 0 && st.pending[0].acks.Load() == 0 {
		commit = (st.pending[0].batch + 1) * b.size
		st.pending = st.pending[1:]
	}
	st.pendMu.Unlock()
	if commit < 0 {
		return
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.session != nil && b.gen == st.gen { // acks of an ended session commit nothing
		b.session.MarkOffset(b.input, st.id, commit, "")
	}
}

// run flushes open batches every interval until stop is closed.
func (b *batcher) run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.flush()
		}
	}
}

var errBatcherFailed = errors.New("snapshot batcher failed")
