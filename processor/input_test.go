package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/stats"
)

// produceTo writes values to partition part of the picture topic.
func produceTo(t *testing.T, c cluster.Config, part int32, values ...string) {
	t.Helper()
	cl, err := c.Client(kgo.DefaultProduceTopic(string(c.Names.Pictures)), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce to %s/%d: %v", c.Names.Pictures, part, err)
		}
	}
}

// TestLateAcknowledgementAfterShutdown runs the input stage on the real
// broker with a snapshot producer whose acknowledgements come only after
// the stage has shut down (goka's producer stops waiting for them after
// 60 s). They must not crash the process, and their commits are dropped.
func TestLateAcknowledgementAfterShutdown(t *testing.T) {
	c := testkafka.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		t.Fatal(err)
	}
	count, _ := stats.Lookup("count")
	p, err := New(c.Names, []stats.Kind{count}, testkafka.Logger(t), WithBatchSize(2))
	if err != nil {
		t.Fatal(err)
	}
	held := newHeldProducer(string(c.Names.Snapshots()))

	// Offset 2 opens batch 1 and so closes batch 0, whose end, offset 2,
	// becomes committable once the final snapshot is acknowledged.
	rec := `{"picture_id":"a","weight":5}`
	produceTo(t, c, 0, rec, rec, rec)
	done := make(chan error, 1)
	go func() { done <- p.runInput(ctx, c, held, func(err error) { t.Errorf("batcher: %v", err) }) }()
	closed := func() bool {
		held.mu.Lock()
		defer held.mu.Unlock()
		for _, s := range held.emits {
			if s.Partition == 0 && s.Batch == 0 && s.Final {
				return true
			}
		}
		return false
	}
	deadline := time.After(time.Minute)
	for !closed() {
		select {
		case <-held.notify:
		case err := <-done:
			t.Fatalf("input stage stopped before batch 0 closed: %v", err)
		case <-deadline:
			t.Fatal("batch 0 of partition 0 not closed within a minute")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("input stage: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("input stage did not stop within a minute")
	}

	noPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s after the input stage stopped: panic: %v", what, r)
			}
		}()
		f()
	}
	// The acknowledgements arrive now. (The consumer revoked its partitions
	// when it closed, so the batcher may not even ask for their commit.)
	noPanic("acknowledging the snapshots", func() {
		for _, finish := range held.take() {
			finish(nil)
		}
	})
	// An acknowledgement that arrives before the revocation does ask for
	// its commit, after the committer stopped.
	noPanic("committing", func() { p.batcher.out.commit(0, 2) })

	adm, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	offs, err := kadm.NewClient(adm).FetchOffsets(context.Background(), c.Names.InputGroup())
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(string(c.Names.Pictures), 0); ok && o.At >= 0 {
		t.Fatalf("partition 0 committed at %d after the input stage stopped", o.At)
	}
}

// TestInputTopicDeletedStopsTheProcessor deletes the picture topic under a
// running processor: Run must return, within a bound, an error that names
// the topic (main turns it into exit status 1), instead of logging the
// fetch errors forever.
func TestInputTopicDeletedStopsTheProcessor(t *testing.T) {
	t.Parallel() // it waits for franz-go for a while
	c := testkafka.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	var once sync.Once
	p, err := New(c.Names, stats.All(), testkafka.Logger(t), WithInputHook(func(int, time.Time) { once.Do(func() { close(read) }) }))
	if err != nil {
		t.Fatal(err)
	}
	p.missingTopicWait = 2 * time.Second
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, c) }()

	produceTo(t, c, 0, `{"picture_id":"a","weight":5}`)
	select {
	case <-read:
	case err := <-done:
		t.Fatalf("processor stopped before reading a record: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("processor read nothing within a minute")
	}

	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topic := string(c.Names.Pictures)
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topic)
	if err == nil {
		err = resp[topic].Err
	}
	if err != nil {
		t.Fatalf("delete %s: %v", topic, err)
	}
	deleted := time.Now()

	// franz-go reports the deleted topic after some seconds (12 s on the
	// embedded broker), then the processor waits missingTopicWait.
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), topic) || !strings.Contains(err.Error(), "no longer exists") {
			t.Fatalf("Run returned %v, want an error saying that %s no longer exists", err, topic)
		}
		t.Logf("after %v: %v", time.Since(deleted).Round(time.Second), err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("Run still running 2 minutes after %s was deleted", topic)
	}
}

func TestClassifyFetchError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want fetchErrorKind
	}{
		{context.Canceled, fetchErrorIgnored},
		{fmt.Errorf("poll: %w", context.DeadlineExceeded), fetchErrorIgnored},
		{kerr.TopicAuthorizationFailed, fetchErrorPermanent},
		{&kgo.ErrGroupSession{Err: kerr.GroupAuthorizationFailed}, fetchErrorPermanent},
		{kerr.ClusterAuthorizationFailed, fetchErrorPermanent},
		{kerr.SaslAuthenticationFailed, fetchErrorPermanent},
		{kerr.UnsupportedCompressionType, fetchErrorPermanent},
		{kerr.UnknownTopicID, fetchErrorMissing},
		{kerr.UnknownTopicOrPartition, fetchErrorMissing},
		{kerr.InconsistentTopicID, fetchErrorMissing},
		{&kgo.ErrGroupSession{Err: kerr.CoordinatorNotAvailable}, fetchErrorTransient},
		{&kgo.ErrGroupSession{Err: kerr.UnknownTopicOrPartition}, fetchErrorTransient},
		{&kgo.ErrGroupSession{Err: errors.New("dial tcp: connection refused")}, fetchErrorTransient},
		{kerr.NotLeaderForPartition, fetchErrorTransient},
		{kerr.UnknownServerError, fetchErrorTransient},
		{&kgo.ErrDataLoss{Topic: "picture", Partition: 1, ConsumedTo: 10, ResetTo: 5}, fetchErrorTransient},
		{errors.New("invalid record batch"), fetchErrorTransient},
	} {
		if got := classifyFetchError(tc.err); got != tc.want {
			t.Errorf("classifyFetchError(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestFetchErrorsSayWhatIsWrong checks the decisions and messages of the
// input stage's fetch error handling, at given times.
func TestFetchErrorsSayWhatIsWrong(t *testing.T) {
	newF := func() *fetchErrors {
		return &fetchErrors{topic: "picture", group: "picstats-input", missingWait: 30 * time.Second, logger: slog.New(slog.DiscardHandler)}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	for _, tc := range []struct {
		err  error
		want []string
	}{
		{kerr.TopicAuthorizationFailed, []string{"input topic picture", "TOPIC_AUTHORIZATION_FAILED", "check the credentials and ACLs"}},
		{&kgo.ErrGroupSession{Err: kerr.GroupAuthorizationFailed}, []string{"input consumer group picstats-input", "GROUP_AUTHORIZATION_FAILED", "check the ACLs"}},
		{kerr.UnsupportedCompressionType, []string{"input topic picture partition 3", "UNSUPPORTED_COMPRESSION_TYPE"}},
	} {
		err := newF().observe("picture", 3, tc.err, t0)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %v, want it to say %q", tc.err, err, w)
			}
		}
	}
	if err := newF().observe("picture", 3, kerr.NotLeaderForPartition, t0); err != nil {
		t.Errorf("a transient error stopped the input: %v", err)
	}

	// A missing topic: tolerated for missingWait, then permanent.
	f := newF()
	for s := 0.0; s < 30; s += 0.25 {
		if err := f.observe("picture", 0, kerr.UnknownTopicID, at(s)); err != nil {
			t.Fatalf("missing for %vs: %v, want to wait 30 s", s, err)
		}
	}
	err := f.observe("picture", 0, kerr.UnknownTopicID, at(30))
	if err == nil || !strings.Contains(err.Error(), "input topic picture no longer exists") || !errors.Is(err, kerr.UnknownTopicID) {
		t.Fatalf("missing for 30 s: %v, want the topic to be declared gone", err)
	}

	// Records in between, or a long quiet gap, end a run of missing-topic
	// errors (a topic created late at start, then a blip much later).
	f = newF()
	f.observe("picture", 0, kerr.UnknownTopicOrPartition, at(0))
	f.observe("picture", 0, kerr.UnknownTopicOrPartition, at(20))
	f.progressed()
	if err := f.observe("picture", 0, kerr.UnknownTopicOrPartition, at(40)); err != nil {
		t.Fatalf("missing again after records: %v", err)
	}
	if err := f.observe("picture", 0, kerr.UnknownTopicOrPartition, at(100)); err != nil {
		t.Fatalf("missing again after a minute without errors: %v", err)
	}
	if err := f.observe("picture", 0, kerr.UnknownTopicOrPartition, at(131)); err != nil {
		t.Fatalf("missing after a gap of 31 s: %v", err)
	}
}

// Stopping a processor is never an error, also while it is starting: goka
// stopped while it waits for its tables says "context closed while waiting
// for startup tables", and a Ctrl-C right after start exited with status 1
// (scripts/starts caught it once in 200 starts).
func TestStopDuringStartIsClean(t *testing.T) {
	c := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for _, after := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond} {
		p, err := New(c.Names, stats.All(), testkafka.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx, c) }()
		time.Sleep(after) // where in the start the stop lands; any place must do
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stopped %v after start: %v, want nil", after, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("stopped %v after start: still running a minute later", after)
		}
	}
}
