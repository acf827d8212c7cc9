package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

// TestPipelineIsExactAndRecoversFromTheChangelog is the foundation's user
// session: registrations go in, exact statistics come out; a new processor
// continues from the table's changelog, re-reading only the open batch of
// each partition, and counts nothing twice.
func TestPipelineIsExactAndRecoversFromTheChangelog(t *testing.T) {
	cfg := testkafka.Start(t)
	ctx := context.Background()
	if err := cluster.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 42))

	// 10,000 registrations, some invalid, produced before anything runs:
	// the processor must start from the oldest offset.
	want := newFeed(rng, string(cfg.Names.Pictures), 10_000)
	produce(t, cfg, want.records)

	const batch = 1000
	stopFirst := startProcessor(t, cfg, processor.WithBatchSize(batch))
	url := startAPI(t, cfg)
	waitForTotal(t, url, want.total(), 2*time.Minute)
	assertExact(t, url, want)
	assertEveryStatistic(t, cfg, url)
	assertTopicsAgree(t, cfg, url, want)

	// Stop the processor. Every closed batch must be committed, and nothing
	// beyond: a new processor reads the closed batches from the table's
	// changelog and re-reads only the open ones.
	stopFirst()
	assertCommittedAtBoundaries(t, cfg, batch)

	startProcessor(t, cfg, processor.WithBatchSize(batch))
	more := newFeed(rng, string(cfg.Names.Pictures), 2_000)
	produce(t, cfg, more.records)
	want.add(more)
	waitForTotal(t, url, want.total(), 2*time.Minute)
	got := assertExact(t, url, want)
	if got.Count.Registrations+got.Rejected.Total != want.total() {
		t.Fatalf("API shows %d records, want exactly %d", got.Count.Registrations+got.Rejected.Total, want.total())
	}
	assertEveryStatistic(t, cfg, url)
	assertTopicsAgree(t, cfg, url, want)
}

func assertCommittedAtBoundaries(t *testing.T, cfg cluster.Config, batch int64) {
	t.Helper()
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	committed, err := adm.FetchOffsetsForTopics(ctx, cfg.Names.InputGroup(), string(cfg.Names.Pictures))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, string(cfg.Names.Pictures))
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(end kadm.ListedOffset) {
		want := end.Offset / batch * batch // the start of the open batch
		c, ok := committed.Lookup(end.Topic, end.Partition)
		if want == 0 && !ok {
			return
		}
		if !ok || c.At != want {
			t.Errorf("partition %d (end %d): committed offset %v, want the batch boundary %d", end.Partition, end.Offset, c.At, want)
		}
	})
}

// readTopic returns the records of topic from the start to its current end.
func readTopic(t *testing.T, cfg cluster.Config, topic string) []*kgo.Record {
	t.Helper()
	cl, err := cfg.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatalf("read %s: %v (still to read: %v)", topic, err, remaining)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			if r.Offset+1 >= remaining[r.Partition] {
				delete(remaining, r.Partition)
			}
		})
	}
	return recs
}

// assertTopicsAgree checks the stats topic's latest value of every statistic
// against the API, and that picture.rejected holds every rejected record.
// Both topics are written beside the table, not before it, so this waits
// (bounded) for them to catch up with what the API shows.
func assertTopicsAgree(t *testing.T, cfg cluster.Config, url string, want *feed) {
	t.Helper()
	var problems []string
	if await.Within(30*time.Second, func() bool { problems = topicProblems(t, cfg, url, want); return len(problems) == 0 }) {
		return
	}
	t.Errorf("topics disagree with the API:\n%s", strings.Join(problems, "\n"))
}

func topicProblems(t *testing.T, cfg cluster.Config, url string, want *feed) (problems []string) {
	latest := map[string]string{}
	for _, r := range readTopic(t, cfg, string(cfg.Names.Stats)) {
		latest[string(r.Key)] = string(r.Value)
	}
	for _, k := range stats.All() {
		var fromAPI json.RawMessage
		if _, err := getJSON(url+"/api/stats/"+k.Name, &fromAPI); err != nil {
			t.Fatal(err)
		}
		if latest[k.Name] != strings.TrimSpace(string(fromAPI)) {
			problems = append(problems, fmt.Sprintf("stats topic %s = %s, API = %s", k.Name, latest[k.Name], fromAPI))
		}
	}

	byReason := map[codec.Reason]int64{}
	seen := map[string]bool{}
	for _, r := range readTopic(t, cfg, string(cfg.Names.Rejected)) {
		if seen[string(r.Key)] { // at-least-once: a reader drops repeats by key
			continue
		}
		seen[string(r.Key)] = true
		var rej processor.Rejection
		if err := json.Unmarshal(r.Value, &rej); err != nil {
			t.Fatalf("picture.rejected value %s: %v", r.Value, err)
		}
		byReason[rej.Reason]++
	}
	if fmt.Sprint(byReason) != fmt.Sprint(want.rejected) {
		problems = append(problems, fmt.Sprintf("picture.rejected holds %v, want %v", byReason, want.rejected))
	}
	return problems
}

// TestUnboundedPictureIDs is a session with far more distinct pictures
// than the per-picture statistics track, each id as long as the codec
// allows: the bounded statistics switch to their sample and estimate, their
// state grows past Kafka's default 1 MB message limit, and every statistic
// still equals its one-pass result.
func TestUnboundedPictureIDs(t *testing.T) {
	cfg := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	const n = 3 * stats.MaxTrackedPictures * 4 // every partition sees more than the bound
	recs := make([]*kgo.Record, n)
	for i := range recs {
		id := fmt.Sprintf("%0*d", codec.MaxPictureIDLen, i)
		recs[i] = &kgo.Record{Topic: string(cfg.Names.Pictures), Key: []byte(id),
			Value: codec.Encode(codec.Registration{PictureID: id, Weight: int64(1 + i%5000)})}
	}
	produce(t, cfg, recs)
	startProcessor(t, cfg, processor.WithBatchSize(1000))
	url := startAPI(t, cfg)
	waitForTotal(t, url, n, 2*time.Minute)
	assertEveryStatistic(t, cfg, url)

	var distinct struct {
		Exact bool `json:"exact"`
	}
	if _, err := getJSON(url+"/api/stats/distinct_pictures", &distinct); err != nil || distinct.Exact {
		t.Fatalf("distinct_pictures exact=%v (err %v) with %d distinct ids, want the estimate", distinct.Exact, err, n)
	}
}
