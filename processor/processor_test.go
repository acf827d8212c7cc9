package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// startTester runs the processor's real group graph and batcher on goka's
// in-memory tester. Snapshots of open batches are sent when the test calls
// flush, so the test decides when they happen.
// consume hands the input stage a record of partition 0 at the next offset.
func startTester(t *testing.T, kinds []stats.Kind, opts ...Option) (tt *tester.Tester, names cluster.Names, consume func(key, value string), flush func()) {
	t.Helper()
	tt = tester.New(t)
	names = cluster.DefaultNames("")
	p, err := New(names, kinds, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	p.batcher = testBatcher(t, tt, names, kinds, p.batch, p.metrics)
	proc, err := goka.NewProcessor(nil, p.Graph(), goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	p.batcher.assign(map[int32]int64{0: -1}) // partition 0, nothing committed yet
	var offset int64
	consume = func(key, value string) {
		r := &kgo.Record{Topic: string(names.Pictures), Partition: 0, Offset: offset, Value: []byte(value)}
		if key != "" {
			r.Key = []byte(key)
		}
		offset++
		p.handle(0, r.Offset+1, []*kgo.Record{r})
		tt.Catchup()
	}
	return tt, names, consume, func() { p.batcher.flush(true, 0); tt.Catchup() }
}

// testBatcher is a batcher that sends its snapshots and rejected records to
// goka's tester, commits nothing, and fails t when it fails.
func testBatcher(t *testing.T, tt *tester.Tester, names cluster.Names, kinds []stats.Kind, size int64, metrics *Metrics) *batcher {
	producer, _ := tt.ProducerBuilder()(nil, "", goka.DefaultHasher())
	return newBatcher(kinds, len(kinds), size, outputs{
		snapshots: string(names.Snapshots()),
		producer:  producer,
		forward: func(key string, value []byte, done func(error)) {
			producer.Emit(string(names.Rejected), key, value).Then(done)
		},
		commit: func(int32, int64) {},
		fail:   func(err error) { t.Errorf("batcher: %v", err) },
	}, metrics, slog.New(slog.DiscardHandler))
}

// result reads a statistic from the group table as the API would.
func result(t *testing.T, tt *tester.Tester, names cluster.Names, stat string) string {
	t.Helper()
	k, _ := stats.Lookup(stat)
	s, err := table.Aggregate(k, tt.TableValue(names.Table(), stat))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s.Result())
	return string(b)
}

func TestAggregatesIntoTableAndStatsTopic(t *testing.T) {
	tt, names, consume, flush := startTester(t, stats.All(), WithBatchSize(2))
	statsOut := tt.NewQueueTracker(string(names.Stats))

	inputs := []struct{ key, value string }{
		{"", `{"picture_id":"000000243626","weight":1778}`},
		{"000000460347", `{"picture_id":"000000460347","weight":1635}`},
		{"", `{"picture_id":"000000460347","weight":-3}`},
		{"", `not json`},
		{"", `{"picture_id":"000000419312","weight":156}`},
	}
	for _, in := range inputs {
		consume(in.key, in.value)
	}
	// Offsets 0-3 are in the closed batches 0 and 1; offset 4 is in the open
	// batch 2, which only a snapshot brings to the table.
	if got := result(t, tt, names, "count"); got != `{"registrations":2}` {
		t.Errorf("before the snapshot of the open batch: count = %s, want the closed batches' 2", got)
	}
	flush()

	for stat, want := range map[string]string{
		"count":          `{"registrations":3}`,
		"average_weight": `{"average_weight_grams":1189.6666666666667,"total_weight_grams":3569,"registrations":3}`,
		"min_weight":     `{"min_weight_grams":156}`,
		"max_weight":     `{"max_weight_grams":1778}`,
		"rejected":       `{"rejected":2,"by_reason":{"malformed_json":1,"weight_out_of_range":1}}`,
	} {
		if got := result(t, tt, names, stat); got != want {
			t.Errorf("table %s = %s, want %s", stat, got, want)
		}
	}

	// The stats topic's last value per statistic is its current result.
	last := map[string]string{}
	for {
		key, value, ok := statsOut.NextRaw()
		if !ok {
			break
		}
		last[key] = string(value)
	}
	for stat, value := range last {
		if want := result(t, tt, names, stat); value != want {
			t.Errorf("stats topic %s = %s, want %s", stat, value, want)
		}
	}
	if len(last) != len(stats.All()) {
		t.Errorf("stats topic has %d statistics, want %d: %v", len(last), len(stats.All()), last)
	}
}

func TestRejectedRecordsAreForwardedWithReason(t *testing.T) {
	tt, names, consume, _ := startTester(t, stats.All())
	rejected := tt.NewQueueTracker(string(names.Rejected))

	consume("k1", `{"picture_id":null,"weight":5}`)
	consume("", "\xff\xfe")
	consume("", `{"picture_id":"a","weight":5}`)

	want := []struct {
		reason   codec.Reason
		value    string
		valueB64 string
		key      string
	}{
		{codec.ReasonMissingPictureID, `{"picture_id":null,"weight":5}`, "", "k1"},
		{codec.ReasonMalformedJSON, "", "\xff\xfe", ""},
	}
	for i, w := range want {
		key, value, ok := rejected.NextRaw()
		if !ok {
			t.Fatalf("rejected topic has %d records, want %d", i, len(want))
		}
		var r Rejection
		if err := json.Unmarshal(value, &r); err != nil {
			t.Fatalf("rejected value %s: %v", value, err)
		}
		if r.Reason != w.reason || r.Value != w.value || string(r.ValueB64) != w.valueB64 || r.Key != w.key || r.Error == "" {
			t.Errorf("rejection %d = %+v, want reason %s value %q key %q", i, r, w.reason, w.value, w.key)
		}
		if wantKey := RejectionKey(string(names.Pictures), r.Partition, r.Offset); key != wantKey {
			t.Errorf("rejection key %q, want %q", key, wantKey)
		}
	}
	if _, _, ok := rejected.NextRaw(); ok {
		t.Error("a valid record was forwarded to the rejected topic")
	}
}

func TestOnlyEnabledStatisticsAreKept(t *testing.T) {
	count, _ := stats.Lookup("count")
	tt, names, consume, flush := startTester(t, []stats.Kind{count})
	consume("", `{"picture_id":"a","weight":5}`)
	flush()
	if keys := tt.GetTableKeys(names.Table()); len(keys) != 1 || keys[0] != "count" {
		t.Fatalf("table keys %v, want [count]", keys)
	}
}

func TestStateOfAnotherVersionFailsLoudly(t *testing.T) {
	k, _ := stats.Lookup("count")
	if _, err := table.Aggregate(k, []byte{table.ValueVersion + 1, 0}); !errors.Is(err, stats.ErrVersion) {
		t.Fatalf("table value of another format version: err %v, want ErrVersion", err)
	}
	var v table.Value
	if _, err := v.Apply(k, table.Snapshot{Batch: 0, Prev: -1, Final: true, Agg: []byte{k.Version + 1, 2}}); !errors.Is(err, stats.ErrVersion) {
		t.Fatalf("aggregate of another statistic version: err %v, want ErrVersion", err)
	}
}

// TestSnapshotsAreOnlySentWhenSomethingChanged checks that an idle
// partition costs nothing: a second flush without new records sends nothing.
func TestSnapshotsAreOnlySentWhenSomethingChanged(t *testing.T) {
	tt, names, consume, flush := startTester(t, stats.All())
	loop := tt.NewQueueTracker(string(names.Snapshots()))
	consume("", `{"picture_id":"a","weight":5}`)
	flush()
	sent := loop.Hwm()
	if sent != int64(len(stats.All())) {
		t.Fatalf("one flush sent %d snapshots, want one per statistic (%d)", sent, len(stats.All()))
	}
	flush()
	if loop.Hwm() != sent {
		t.Fatalf("an idle flush sent %d more snapshots", loop.Hwm()-sent)
	}
}

func TestTopicNamesAgreeWithGoka(t *testing.T) {
	names := cluster.DefaultNames("x.")
	p, err := New(names, stats.All(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Graph().GroupTable().Topic(); got != string(names.Table()) {
		t.Errorf("goka's table topic %q, cluster.Names.Table %q", got, names.Table())
	}
}

// TestRecordsOfUnownedPartitionsAreDropped checks that the batcher never
// starts a batch for a partition it was not assigned: it would snapshot part
// of a batch.
func TestRecordsOfUnownedPartitionsAreDropped(t *testing.T) {
	tt := tester.New(t)
	names := cluster.DefaultNames("")
	b := testBatcher(t, tt, names, stats.All(), 10, nil)
	b.assign(map[int32]int64{0: -1})
	rec := stats.Record{Registration: codec.Registration{PictureID: "a", Weight: 5}}
	b.addAll(1, 16, func(add adder) { add(15, &rec, "", nil) })
	b.revoke([]int32{0})
	b.addAll(0, 4, func(add adder) { add(3, &rec, "", nil) })
	b.flush(true, 0)
	if n := tt.NewQueueTracker(string(names.Snapshots())).Hwm(); n != 0 {
		t.Fatalf("%d snapshots sent for partitions the batcher does not own", n)
	}
}

// TestNoOpenSnapshotsWhileFarBehind checks that a partition at least a batch
// behind its high watermark sends no open snapshots (its batch closes soon;
// the final snapshot carries it), and sends them again once caught up.
func TestNoOpenSnapshotsWhileFarBehind(t *testing.T) {
	tt := tester.New(t)
	names := cluster.DefaultNames("")
	b := testBatcher(t, tt, names, stats.All(), 10, nil)
	snapshots := tt.NewQueueTracker(string(names.Snapshots()))
	b.assign(map[int32]int64{0: -1})
	rec := stats.Record{Registration: codec.Registration{PictureID: "a", Weight: 5}}

	b.addAll(0, 1000, func(add adder) { add(0, &rec, "", nil) }) // 999 records behind
	b.flush(true, 0)
	if n := snapshots.Hwm(); n != 0 {
		t.Fatalf("%d snapshots sent for a partition far behind its high watermark", n)
	}
	b.addAll(0, 1000, func(add adder) { add(995, &rec, "", nil) }) // closes batch 0, 4 behind
	closed := snapshots.Hwm()
	if closed != int64(len(stats.All())) {
		t.Fatalf("closing a batch sent %d snapshots, want a final one per statistic", closed)
	}
	b.flush(true, 0)
	if n := snapshots.Hwm() - closed; n != int64(len(stats.All())) {
		t.Fatalf("%d open snapshots sent for a partition within a batch of its high watermark, want one per statistic", n)
	}
}

// TestWindowedStatisticsAreSnapshottedAtFullFlushes checks the two
// cadences: a flush sends open snapshots of the plain statistics, and only
// a full flush (every --window-snapshot-interval) those of the windowed
// ones, whose table values are larger. A batch's final snapshot carries
// every statistic.
func TestWindowedStatisticsAreSnapshottedAtFullFlushes(t *testing.T) {
	tt := tester.New(t)
	names := cluster.DefaultNames("")
	count, _ := stats.Lookup("count")
	hourly, err := count.Windowed(stats.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := testBatcher(t, tt, names, []stats.Kind{count, hourly}, 10, nil)
	b.fast = 1 // count every flush, count@1h at full ones
	snapshots := tt.NewQueueTracker(string(names.Snapshots()))
	b.assign(map[int32]int64{0: -1})
	rec := stats.Record{Registration: codec.Registration{PictureID: "a", Weight: 5}, Time: time.Now()}
	seen := int64(0)
	sent := func() int64 { // snapshots sent since the last call
		n := snapshots.Hwm() - seen
		seen += n
		return n
	}
	steps := []struct {
		name string
		do   func()
		want int64 // snapshots sent
	}{
		{"a flush after a record", func() { b.addAll(0, 2, func(add adder) { add(0, &rec, "", nil) }); b.flush(false, 0) }, 1},
		{"a flush without news", func() { b.flush(false, 0) }, 0},
		{"a full flush", func() { b.flush(true, 0) }, 1}, // count@1h; count has no news
		{"a full flush without news", func() { b.flush(true, 0) }, 0},
		{"closing the batch", func() { b.addAll(0, 12, func(add adder) { add(11, &rec, "", nil) }) }, 2},
	}
	for _, s := range steps {
		s.do()
		if got := sent(); got != s.want {
			t.Errorf("%s: %d snapshots, want %d", s.name, got, s.want)
		}
	}
}

// TestLargeStatisticsAreSnapshottedLessOften checks the cadence of a plain
// statistic whose snapshot is large (per-picture state): it rides along
// with the small ones at most every largeInterval, as each of its
// snapshots rewrites its whole table value.
func TestLargeStatisticsAreSnapshottedLessOften(t *testing.T) {
	count, _ := stats.Lookup("count")
	pictures, _ := stats.Lookup("pictures")
	held := newHeldProducer("snapshots")
	b := newBatcher([]stats.Kind{count, pictures}, 2, 1000, outputs{snapshots: "snapshots", producer: held,
		commit: func(int32, int64) {}, fail: func(err error) { t.Errorf("batcher: %v", err) }}, nil, slog.New(slog.DiscardHandler))
	b.assign(map[int32]int64{0: -1})
	offset := int64(0)
	add := func(n int) { // n records of distinct pictures
		b.addAll(0, offset+int64(n), func(add adder) {
			for range n {
				rec := stats.Record{Registration: codec.Registration{PictureID: fmt.Sprintf("picture-%d", offset), Weight: 5}, Time: time.Now()}
				add(offset, &rec, "", nil)
				offset++
			}
		})
	}
	seen := 0
	flush := func() map[string]int { // flushes; the snapshots per statistic it sent, acknowledged
		b.flush(false, 0)
		for _, done := range held.take() {
			done(nil)
		}
		held.mu.Lock()
		defer held.mu.Unlock()
		out := map[string]int{}
		for _, k := range held.keys[seen:] {
			out[k]++
		}
		seen = len(held.keys)
		return out
	}
	add(100) // pictures' snapshot is now well over largeSnapshot bytes
	if got := flush(); got["count"] != 1 || got["pictures"] != 1 {
		t.Fatalf("first flush sent %v, want one of each", got)
	}
	add(1)
	if got := flush(); got["count"] != 1 || got["pictures"] != 0 {
		t.Fatalf("a flush within largeInterval sent %v, want count only", got)
	}
	b.owned(0).sentLarge = time.Now().Add(-largeInterval) // as if largeInterval had passed
	add(1)
	if got := flush(); got["count"] != 1 || got["pictures"] != 1 {
		t.Fatalf("a flush after largeInterval sent %v, want one of each", got)
	}
	b.owned(0).sentLarge = time.Now().Add(-largeInterval)
	if got := flush(); len(got) != 0 {
		t.Fatalf("a flush without news sent %v", got)
	}
	// News held back as large must still go if another partition's small
	// snapshot reclassifies the statistic meanwhile (the e2e old-owner
	// test lost the last records of pictures so).
	b.owned(0).sentLarge = time.Now()
	add(1)
	if got := flush(); got["count"] != 1 || got["pictures"] != 0 {
		t.Fatalf("a flush within largeInterval sent %v, want count only", got)
	}
	b.large[1].Store(false)
	if got := flush(); got["pictures"] != 1 {
		t.Fatalf("after pictures became small, a flush sent %v: its news was lost", got)
	}
}
