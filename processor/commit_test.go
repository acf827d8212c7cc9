package processor

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// heldProducer stands in for goka's producer: every Emit's promise stays
// unfinished until the test finishes it, and Close does not wait for them
// (goka's gives up after 60 s).
type heldProducer struct {
	mu       sync.Mutex
	finish   []goka.PromiseFinisher
	emits    []table.Snapshot
	keys     []string      // the key of each of emits
	notify   chan struct{} // capacity 1: something was emitted
	snapshot string        // the topic whose values are decoded into emits
}

func newHeldProducer(snapshots string) *heldProducer {
	return &heldProducer{notify: make(chan struct{}, 1), snapshot: snapshots}
}

func (h *heldProducer) Emit(topic, key string, value []byte) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	h.mu.Lock()
	h.finish = append(h.finish, finish)
	if topic == h.snapshot {
		var s table.Snapshot
		if err := s.UnmarshalBinary(value); err == nil {
			h.emits, h.keys = append(h.emits, s), append(h.keys, key)
		}
	}
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return promise
}

func (h *heldProducer) EmitWithHeaders(topic, key string, value []byte, _ goka.Headers) *goka.Promise {
	return h.Emit(topic, key, value)
}

func (h *heldProducer) Close() error { return nil }

// take returns the finishers of the promises emitted so far and forgets
// them.
func (h *heldProducer) take() []func(error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]func(error), len(h.finish))
	for i, f := range h.finish {
		out[i] = func(err error) { f(nil, err) }
	}
	h.finish = nil
	return out
}

// commitLog records the commits a batcher makes, per partition.
type commitLog struct {
	mu  sync.Mutex
	seq map[int32][]int64
}

func (l *commitLog) commit(p int32, offset int64) {
	// Yield first: b.commit stands for a hand-off that may wait, and a
	// commit computed earlier must not be overtaken meanwhile.
	runtime.Gosched()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq == nil {
		l.seq = map[int32][]int64{}
	}
	l.seq[p] = append(l.seq[p], offset)
}

// TestCommittedOffsetsOnlyGrow drives the batcher through many batches of
// two partitions with rejected records, then acknowledges every snapshot
// and every rejected record in a random order from several goroutines at
// once, as the snapshot producer's and franz-go's goroutines do. Each
// partition's commits must be strictly increasing batch boundaries and end
// at the last closed batch.
func TestCommittedOffsetsOnlyGrow(t *testing.T) {
	const (
		size    = 4
		batches = 60
		workers = 8
	)
	kinds := stats.All()[:3]
	producer := newHeldProducer("snapshots")
	var fwdMu sync.Mutex
	var forwarded []func(error)
	var log commitLog
	b := newBatcher(kinds, len(kinds), size, outputs{snapshots: "snapshots", producer: producer,
		forward: func(_ string, _ []byte, done func(error)) {
			fwdMu.Lock()
			forwarded = append(forwarded, done)
			fwdMu.Unlock()
		},
		commit: log.commit,
		fail:   func(err error) { t.Errorf("batcher: %v", err) }}, nil, slog.New(slog.DiscardHandler))
	parts := []int32{0, 1}
	b.assign(map[int32]int64{0: -1, 1: -1})

	// Every third record is rejected. The record at batches·size opens
	// batch `batches` and so closes the last full one.
	valid := stats.Record{Registration: codec.Registration{PictureID: "a", Weight: 5}}
	rejected := stats.Record{Rejected: codec.ReasonMalformedJSON}
	for _, p := range parts {
		b.addAll(p, batches*size+1, func(add adder) {
			for o := int64(0); o <= batches*size; o++ {
				if o%3 == 0 {
					add(o, &rejected, RejectionKey("picture", p, o), []byte("x"))
				} else {
					add(o, &valid, "", nil)
				}
			}
		})
	}
	acks := producer.take()
	fwdMu.Lock()
	acks = append(acks, forwarded...)
	fwdMu.Unlock()
	rand.Shuffle(len(acks), func(i, j int) { acks[i], acks[j] = acks[j], acks[i] })

	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := w; i < len(acks); i += workers {
				acks[i](nil)
			}
		}()
	}
	close(start)
	wg.Wait()

	for _, p := range parts {
		seq := log.seq[p]
		for i := 1; i < len(seq); i++ {
			if seq[i] <= seq[i-1] {
				t.Fatalf("partition %d: commit %d after %d: a committed offset went back (commits %v)", p, seq[i], seq[i-1], seq)
			}
		}
		for _, off := range seq {
			if off%size != 0 {
				t.Fatalf("partition %d: committed %d, not a batch boundary", p, off)
			}
		}
		if len(seq) == 0 || seq[len(seq)-1] != batches*size {
			t.Fatalf("partition %d: commits %v, want them to end at %d", p, seq, batches*size)
		}
	}
}

// TestCommitterKeepsTheHighestOffset checks that commits requested while
// one is in flight are coalesced into the next, keeping the highest offset
// of each partition, and that a request after stop is dropped.
func TestCommitterKeepsTheHighestOffset(t *testing.T) {
	calls := make(chan map[int32]int64)
	release := make(chan struct{})
	c := newCommitter(slog.New(slog.DiscardHandler), func(offsets map[int32]int64) {
		calls <- maps.Clone(offsets)
		<-release
	})
	go c.run()

	c.request(0, 10)
	if got := <-calls; fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 10}) {
		t.Fatalf("first commit %v, want partition 0 at 10", got)
	}
	// The first commit is in flight (waiting for release): these queue.
	for _, r := range []struct {
		part   int32
		offset int64
	}{{0, 30}, {1, 15}, {0, 20}, {1, 5}, {3, 50}} {
		c.request(r.part, r.offset)
	}
	c.forget([]int32{3}) // revoked: its new owner commits for itself
	release <- struct{}{}
	if got, want := <-calls, map[int32]int64{0: 30, 1: 15}; !maps.Equal(got, want) {
		t.Fatalf("coalesced commit %v, want %v", got, want)
	}
	release <- struct{}{}

	// What is requested before stop is committed by stop.
	c.request(2, 8)
	stopped := make(chan struct{})
	go func() { c.stop(); close(stopped) }()
	if got, want := <-calls, map[int32]int64{2: 8}; !maps.Equal(got, want) {
		t.Fatalf("commit at stop %v, want %v", got, want)
	}
	release <- struct{}{}
	<-stopped

	// A late acknowledgement: dropped, not a panic, not a commit.
	c.request(0, 40)
	select {
	case got := <-calls:
		t.Fatalf("committed %v after stop", got)
	default:
	}
}

// TestOpenSnapshotsWaitForTheirAcknowledgement checks how open snapshots
// are paced: news while a partition's open snapshot is unacknowledged goes
// into the next one, which is due (the batcher is woken) as soon as the
// acknowledgement comes, and no sooner than the interval after the last.
func TestOpenSnapshotsWaitForTheirAcknowledgement(t *testing.T) {
	count, _ := stats.Lookup("count")
	held := newHeldProducer("snapshots")
	b := newBatcher([]stats.Kind{count}, 1, 100, outputs{snapshots: "snapshots", producer: held,
		commit: func(int32, int64) {}, fail: func(err error) { t.Errorf("batcher: %v", err) }}, nil, slog.New(slog.DiscardHandler))
	b.assign(map[int32]int64{0: -1})
	rec := stats.Record{Registration: codec.Registration{PictureID: "a", Weight: 5}, Time: time.Now()}
	add := func(offset int64) { b.addAll(0, offset+1, func(add adder) { add(offset, &rec, "", nil) }) }
	woken := func() bool {
		select {
		case <-b.news:
			return true
		default:
			return false
		}
	}
	emitted := func() []int64 { // the Last of every snapshot emitted so far
		held.mu.Lock()
		defer held.mu.Unlock()
		var lasts []int64
		for _, s := range held.emits {
			lasts = append(lasts, s.Last)
		}
		return lasts
	}

	add(0)
	if !woken() {
		t.Fatal("a record did not wake the batcher")
	}
	b.flush(false, 0)
	add(1)
	add(2)
	if woken() {
		t.Error("news woke the batcher while an open snapshot was unacknowledged")
	}
	b.flush(false, 0)
	if got := emitted(); !slices.Equal(got, []int64{0}) {
		t.Fatalf("snapshots up to offsets %v, want [0]: a second one while the first was in flight", got)
	}
	for _, done := range held.take() {
		done(nil)
	}
	if !woken() {
		t.Fatal("the acknowledgement did not wake the batcher for the news that came meanwhile")
	}
	b.flush(false, 0)
	if got := emitted(); !slices.Equal(got, []int64{0, 2}) {
		t.Fatalf("snapshots up to offsets %v, want [0 2]", got)
	}
	for _, done := range held.take() {
		done(nil)
	}
	woken()
	add(3)
	b.flush(false, time.Hour)
	if got := emitted(); len(got) != 2 {
		t.Fatalf("snapshots up to offsets %v: one sooner than the interval after the last", got)
	}
}
