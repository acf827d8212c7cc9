package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/processor"
)

// TestALateWriteOfAnOldTableOwnerTakesNothingBack writes to the table's
// changelog what an old owner of the table partitions writes when it wakes
// from a pause past its session (a SIGSTOP, a long GC): values it computed
// from its old copy, behind those the new owner wrote before. The API that
// reads them, an API started afterwards, and a processor that recovers the
// table from that changelog must all go on with the newest values, exactly.
func TestALateWriteOfAnOldTableOwnerTakesNothingBack(t *testing.T) {
	cfg := testkafka.Start(t)
	ctx := context.Background()
	if err := cluster.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	want := newFeed(rng, string(cfg.Names.Pictures), 5_000)
	produce(t, cfg, want.records)

	// Small batches, so that an old value is behind in closed batches: a
	// processor that recovered it would ignore every later batch.
	const batch = 100
	stopFirst := startProcessor(t, cfg, processor.WithBatchSize(batch))
	url := startAPI(t, cfg)
	waitForTotal(t, url, want.total(), 2*time.Minute)
	assertExact(t, url, want)

	// The old owner's late writes: for every statistic, the first value the
	// table stage wrote, written again after the newest.
	table := string(cfg.Names.Table())
	first := map[string]*kgo.Record{}
	for _, r := range readTopic(t, cfg, table) {
		if first[string(r.Key)] == nil {
			first[string(r.Key)] = r
		}
	}
	var late []*kgo.Record
	for key, r := range first {
		late = append(late, &kgo.Record{Topic: table, Partition: r.Partition, Key: []byte(key), Value: r.Value})
	}
	cl, err := cfg.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, late...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d old values to %s", len(late), table)

	// The running API reads them and keeps its values.
	awaitViewAt(t, cfg, url)
	assertExact(t, url, want)
	assertEveryStatistic(t, cfg, url)

	// An API started now reads the changelog from the start, old values last.
	fresh := startAPI(t, cfg)
	waitForTotal(t, fresh, want.total(), time.Minute)
	assertExact(t, fresh, want)
	assertEveryStatistic(t, cfg, fresh)

	// A new processor recovers the table from that changelog and counts on.
	stopFirst()
	startProcessor(t, cfg, processor.WithBatchSize(batch))
	more := newFeed(rng, string(cfg.Names.Pictures), 1_000)
	produce(t, cfg, more.records)
	want.add(more)
	for _, u := range []string{url, fresh} {
		waitForTotal(t, u, want.total(), 2*time.Minute)
		assertExact(t, u, want)
		assertEveryStatistic(t, cfg, u)
	}
}

// awaitViewAt waits until the API's View has read the table's changelog to
// its current end (Picstats-View-Position, the sum of its partitions'
// positions, reaches the sum of their end offsets).
func awaitViewAt(t *testing.T, cfg cluster.Config, url string) {
	t.Helper()
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), string(cfg.Names.Table()))
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	var pos int64
	if !await.Within(time.Minute, func() bool {
		resp, err := http.Get(url + "/api/stats")
		if err != nil {
			return false
		}
		resp.Body.Close()
		pos, _ = strconv.ParseInt(resp.Header.Get("Picstats-View-Position"), 10, 64)
		return pos >= end
	}) {
		t.Fatalf("the View is at %d of the table's %d records after a minute", pos, end)
	}
}
