package processor

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// TestMetricsCountRecordsAndSnapshots feeds the input stage valid and bad
// records and checks what the metrics say: records and rejections per
// partition and reason, the lag from the fetch's high watermark, closed
// batches, open-snapshot flushes, and the table stage's applied and
// ignored snapshots.
func TestMetricsCountRecordsAndSnapshots(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	tt, names, consume, flush := startTester(t, stats.All(), WithMetrics(m), WithBatchSize(3))

	consume("", `{"picture_id":"a","weight":5}`)
	consume("", `{"picture_id":null,"weight":5}`)
	consume("", `not json`)
	consume("", `{"picture_id":"b","weight":7}`) // offset 3: closes batch 0
	flush()

	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"records of partition 0", testutil.ToFloat64(m.records.WithLabelValues("0")), 4},
		{"rejected missing_picture_id", testutil.ToFloat64(m.rejected.WithLabelValues("0", string(codec.ReasonMissingPictureID))), 1},
		{"rejected malformed_json", testutil.ToFloat64(m.rejected.WithLabelValues("0", string(codec.ReasonMalformedJSON))), 1},
		{"rejected empty_value", testutil.ToFloat64(m.rejected.WithLabelValues("0", string(codec.ReasonEmpty))), 0},
		{"batches closed", testutil.ToFloat64(m.batchesClosed.WithLabelValues("0")), 1},
		{"open-snapshot flushes", testutil.ToFloat64(m.openFlushes), 1},
		{"snapshot sends timed (final of batch 0, open of batch 1)", sampleCount(t, reg, "picstats_input_snapshot_send_seconds"), 2},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// consume hands each record with the high watermark after it: lag 0.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP picstats_input_lag_records Consumer lag of an input partition this process owns: its high watermark minus the next offset to read, both from the last fetch.
# TYPE picstats_input_lag_records gauge
picstats_input_lag_records{partition="0"} 0
`), "picstats_input_lag_records"); err != nil {
		t.Error(err)
	}
	// Every statistic's final snapshot of batch 0 and open snapshot of
	// batch 1 changed the table; nothing was ignored yet.
	applied := testutil.ToFloat64(m.applied)
	if want := float64(2 * len(stats.All())); applied != want {
		t.Errorf("snapshots applied = %v, want %v", applied, want)
	}
	flush() // nothing changed: nothing sent, nothing ignored
	if got := testutil.ToFloat64(m.ignored.WithLabelValues("replay")) + testutil.ToFloat64(m.ignored.WithLabelValues("stale_owner")); got != 0 {
		t.Errorf("snapshots ignored = %v, want 0", got)
	}

	// A replayed final snapshot of batch 0, and one of an owner that skipped
	// batch 1: ignored, by reason.
	count, _ := stats.Lookup("count")
	agg, _ := count.Encode(count.New())
	for _, s := range []table.Snapshot{
		{Partition: 0, Batch: 0, Prev: table.NoBatch, Last: 2, Final: true, Agg: agg},
		{Partition: 0, Batch: 2, Prev: 1, Last: 6, Agg: agg},
	} {
		b, _ := s.MarshalBinary()
		tt.Consume(string(names.Snapshots()), "count", b)
	}
	tt.Catchup()
	for reason, want := range map[string]float64{"replay": 1, "stale_owner": 1} {
		if got := testutil.ToFloat64(m.ignored.WithLabelValues(reason)); got != want {
			t.Errorf("snapshots ignored as %s = %v, want %v", reason, got, want)
		}
	}
}

// TestLagBeforeAndAfterFetches checks the lags from an assignment (start
// and end offsets) and from fetches, and that a revoked partition's lag
// is no longer exported.
func TestLagBeforeAndAfterFetches(t *testing.T) {
	m := NewMetrics(nil)
	m.assigned(map[int32]int64{0: 100, 1: -1}, map[int32][2]int64{0: {0, 250}, 1: {40, 90}})
	if got, want := m.lags(), map[int32][2]int64{0: {150, 150}, 1: {50, 50}}; !equalLags(got, want) {
		t.Fatalf("lags after assignment %v, want %v", got, want)
	}
	var none [len(reasonIndex)]int
	m.part(0).fetched(m, 150, &none, 250, 260)
	m.committedOffsets(map[int32]int64{0: 200}, time.Millisecond, nil)
	if got, want := m.lags(), map[int32][2]int64{0: {10, 60}, 1: {50, 50}}; !equalLags(got, want) {
		t.Fatalf("lags after a fetch and a commit %v, want %v", got, want)
	}
	m.revoked([]int32{1})
	if got, want := m.lags(), map[int32][2]int64{0: {10, 60}}; !equalLags(got, want) {
		t.Fatalf("lags after revoking partition 1 %v, want %v", got, want)
	}
}

func equalLags(a, b map[int32][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestHandleCountsWithoutAllocatingPerRecord checks that counting adds no
// allocation per record: a fetch of 1000 valid records allocates no more
// than one of 10.
func TestHandleCountsWithoutAllocatingPerRecord(t *testing.T) {
	kinds, err := stats.Select("count")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cluster.DefaultNames(""), kinds, slog.New(slog.DiscardHandler), WithMetrics(NewMetrics(prometheus.NewRegistry())), WithBatchSize(1<<40))
	if err != nil {
		t.Fatal(err)
	}
	p.batcher = newBatcher(kinds, len(kinds), p.batch, outputs{fail: func(err error) { t.Error(err) }}, p.metrics, slog.New(slog.DiscardHandler))
	p.batcher.assign(map[int32]int64{0: -1})
	fetch := func(n int) []*kgo.Record {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Value: codec.Encode(codec.Registration{PictureID: "a", Weight: 5})}
		}
		return recs
	}
	var offset int64
	allocs := func(n int) float64 {
		recs := fetch(n)
		return testing.AllocsPerRun(20, func() {
			for _, r := range recs {
				r.Offset = offset
				offset++
			}
			p.handle(0, offset, recs)
		})
	}
	small, large := allocs(10), allocs(1000)
	if large > small {
		t.Errorf("handling a fetch of 1000 records allocates %v times, one of 10 %v: counting allocates per record", large, small)
	}
}

// TestProbesBeforeTheProcessorRuns checks /readyz and /healthz of a
// processor that has not started, and the watchdog.
func TestProbesBeforeTheProcessorRuns(t *testing.T) {
	p, err := New(cluster.DefaultNames(""), stats.All(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	get := func(h http.HandlerFunc) (int, string) {
		w := httptest.NewRecorder()
		h(w, httptest.NewRequest(http.MethodGet, "/", nil))
		return w.Code, w.Body.String()
	}
	if code, body := get(p.Readyz); code != http.StatusServiceUnavailable || !strings.Contains(body, `"not_ready"`) || !strings.Contains(body, "has not started") {
		t.Errorf("/readyz before Run: %d %s", code, body)
	}
	if code, body := get(p.Healthz); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz before Run: %d %s", code, body)
	}
	p.health.started.Store(time.Now().UnixNano())
	p.health.recovered.Store(true)
	if ok, why := p.Ready(); ok || !strings.Contains(why, "joining its consumer group") {
		t.Errorf("Ready with the table recovered but no assignment: %v %q", ok, why)
	}
	p.health.assigned.Store(true)
	if code, body := get(p.Readyz); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
		t.Errorf("/readyz once recovered and assigned: %d %s", code, body)
	}
	now := time.Now()
	p.health.handling.Store(now.Add(-time.Minute).UnixNano())
	if why := p.Wedged(now, 2*time.Minute); why != "" {
		t.Errorf("wedged after a minute's fetch with a limit of two: %q", why)
	}
	if why := p.Wedged(now, 30*time.Second); !strings.Contains(why, "handling one fetch") {
		t.Errorf("not wedged after a minute's fetch with a limit of 30 s: %q", why)
	}
}

// sampleCount returns the sample count of histogram name in reg.
func sampleCount(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.Metric) == 1 {
			return float64(f.Metric[0].GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0
}

// TestWatchdogOfTableCallbacks checks that only a table-stage callback
// that runs long counts as wedged, however many others come and go.
func TestWatchdogOfTableCallbacks(t *testing.T) {
	p, err := New(cluster.DefaultNames(""), stats.All(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stuck := p.health.applyStarted(3)
	stuck.Store(time.Now().Add(-time.Hour).UnixNano())
	for range 100 { // callbacks of other partitions come and go
		p.health.applyStarted(1).Store(0)
	}
	if why := p.Wedged(time.Now(), time.Minute); !strings.Contains(why, "table-stage callback") {
		t.Errorf("a callback running for an hour: Wedged = %q", why)
	}
	stuck.Store(0)
	if why := p.Wedged(time.Now(), time.Minute); why != "" {
		t.Errorf("no callback running: Wedged = %q", why)
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestProgressLine checks the processor's periodic INFO line: throughput
// and lag under stable keys.
func TestProgressLine(t *testing.T) {
	var logs syncBuffer
	p, err := New(cluster.DefaultNames(""), stats.All(), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	p.metrics.assigned(map[int32]int64{0: 0}, map[int32][2]int64{0: {0, 0}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.logProgress(ctx, 10*time.Millisecond)
	await.True(t, 10*time.Second, "a first progress line", func() bool { return strings.Contains(logs.String(), `"processor progress"`) })
	var rejected [len(reasonIndex)]int
	rejected[reasonSlot(codec.ReasonEmpty)] = 2
	p.metrics.part(0).fetched(p.metrics, 10, &rejected, 10, 15)
	for _, want := range []string{`"records":10,`, `"rejected":2,`, `"lag":5,`} {
		await.True(t, 10*time.Second, "a progress line with "+want, func() bool { return strings.Contains(logs.String(), want) })
	}
	for _, want := range []string{`"partitions":1,`, `"records_per_second":`, `"committed_lag":`, `"batches_closed":`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the progress lines lack %s: %s", want, logs.String())
		}
	}
}
