package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// startKafka starts Apache Kafka with scripts/kafka on free ports in the
// scratch folder and connects e.adm to it; the returned stop must be
// called even on error.
func (e *env) startKafka(ctx context.Context) (func(), error) {
	kdir, cl := filepath.Join(e.tmp, "kafka"), (*kgo.Client)(nil)
	stop := func() {
		if cl != nil {
			cl.Close()
		}
		_ = benchkit.Run(context.Background(), "scripts/kafka", "stop", "--dir", kdir) // ctx may be cancelled (Ctrl-C)
		if e.o.logs != "" {
			_ = os.Rename(filepath.Join(kdir, "broker.log"), filepath.Join(e.o.logs, "kafka-broker.log"))
		}
	}
	ports, err := benchkit.FreePorts(3)
	if err != nil {
		return stop, err
	}
	e.broker = fmt.Sprintf("127.0.0.1:%d", ports[0])
	fmt.Printf("starting Kafka 4.1.1 at %s…\n", e.broker)
	if err := benchkit.Run(ctx, "scripts/kafka", "start", "--dir", kdir, "--port", fmt.Sprint(ports[0]),
		"--external-port", fmt.Sprint(ports[1]), "--controller-port", fmt.Sprint(ports[2])); err != nil {
		return stop, fmt.Errorf("kafka start: %w", err)
	}
	if cl, err = kgo.NewClient(kgo.SeedBrokers(e.broker)); err != nil {
		return stop, err
	}
	e.adm = kadm.NewClient(cl)
	// The first group on a fresh broker creates __consumer_offsets (50
	// partitions, seconds): do it now, not in the first contender's time,
	// by committing an offset for a throwaway group.
	const warm = "bench.warmup"
	if _, err := e.adm.CreateTopic(ctx, 1, 1, nil, warm); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return stop, err
	}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: warm, Partition: 0, At: 0, LeaderEpoch: -1})
	if err := benchkit.Poll(ctx, 2*time.Minute, 200*time.Millisecond, func() error { return e.adm.CommitAllOffsets(ctx, warm, o) }); err != nil {
		return stop, fmt.Errorf("creating __consumer_offsets: %w", err)
	}
	return stop, deleteAll(ctx, e.adm, []string{warm}, []string{warm})
}

// deleteAll deletes the groups and topics that exist and waits until they
// are gone.
func deleteAll(ctx context.Context, adm *kadm.Client, groups, topics []string) error {
	return benchkit.Poll(ctx, 2*time.Minute, 500*time.Millisecond, func() error {
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		td, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		var ts, pending []string
		for _, g := range groups {
			if _, ok := listed[g]; ok {
				res, _ := adm.DeleteGroups(ctx, g)
				pending = append(pending, fmt.Sprintf("group %s (%v)", g, res[g].Err))
			}
		}
		for _, t := range topics {
			if td.Has(t) {
				ts = append(ts, t)
			}
		}
		if len(ts) > 0 {
			_, _ = adm.DeleteTopics(ctx, ts...)
			pending = append(pending, "topics "+strings.Join(ts, ","))
		}
		if len(pending) > 0 {
			return fmt.Errorf("still there: %s", strings.Join(pending, "; "))
		}
		return nil
	})
}

// deletePrefixed deletes every topic whose name starts with prefix, and
// the groups given.
func deletePrefixed(ctx context.Context, adm *kadm.Client, prefix string, groups ...string) error {
	td, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	var ts []string
	for _, t := range td.Names() {
		if strings.HasPrefix(t, prefix) {
			ts = append(ts, t)
		}
	}
	return deleteAll(ctx, adm, groups, ts)
}

// freshInput deletes what an earlier run left under prefix (topics and
// picstats' groups) and creates the input topic prefix+"picture".
func (e *env) freshInput(ctx context.Context, prefix string) error {
	if err := deletePrefixed(ctx, e.adm, prefix, picstatsGroups(prefix)...); err != nil {
		return err
	}
	if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, prefix+"picture"); err != nil {
		return fmt.Errorf("create %spicture: %w", prefix, err)
	}
	return nil
}

// topicSize is the number of records written to a topic (end minus start
// offsets: compaction leaves offsets as they are) and its bytes on disk
// (which compaction reduces).
func topicSize(ctx context.Context, adm *kadm.Client, topic string) (records, bytes int64, err error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			records += o.Offset - s.Offset
		}
	})
	dirs, err := adm.DescribeAllLogDirs(ctx, nil) // all topics; filtered below
	dirs.Each(func(d kadm.DescribedLogDir) {
		for _, p := range d.Topics[topic] {
			bytes += p.Size
		}
	})
	return records, bytes, err
}
