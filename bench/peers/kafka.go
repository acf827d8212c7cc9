package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
	ports, err := benchkit.FreePorts(3)
	if err != nil {
		return func() {}, err
	}
	kdir := filepath.Join(e.tmp, "kafka")
	e.broker = fmt.Sprintf("127.0.0.1:%d", ports[0])
	fmt.Printf("starting Kafka 4.1.1 at %s…\n", e.broker)
	var cl *kgo.Client
	stop := func() {
		if cl != nil {
			cl.Close()
		}
		// a fresh context: ctx may be cancelled (Ctrl-C)
		_ = benchkit.Run(context.Background(), "scripts/kafka", "stop", "--dir", kdir)
		if e.o.logs != "" {
			_ = os.Rename(filepath.Join(kdir, "broker.log"), filepath.Join(e.o.logs, "kafka-broker.log"))
		}
	}
	if err := benchkit.Run(ctx, "scripts/kafka", "start", "--dir", kdir, "--port", strconv.Itoa(ports[0]),
		"--external-port", strconv.Itoa(ports[1]), "--controller-port", strconv.Itoa(ports[2])); err != nil {
		return stop, fmt.Errorf("kafka start: %w", err)
	}
	if cl, err = kgo.NewClient(kgo.SeedBrokers(e.broker)); err != nil {
		return stop, err
	}
	e.adm = kadm.NewClient(cl)
	// The first group on a fresh broker creates __consumer_offsets (50
	// partitions, seconds): do it now, not in the first contender's time.
	if err := warmGroups(ctx, e.adm); err != nil {
		return stop, fmt.Errorf("creating __consumer_offsets: %w", err)
	}
	return stop, nil
}

// warmGroups commits an offset for a throwaway group, which makes the broker
// create __consumer_offsets, then deletes the group.
func warmGroups(ctx context.Context, adm *kadm.Client) error {
	const g, t = "bench.warmup", "bench.warmup"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, t); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: t, Partition: 0, At: 0, LeaderEpoch: -1})
	if err := benchkit.Poll(ctx, 2*time.Minute, 200*time.Millisecond, func() error { return adm.CommitAllOffsets(ctx, g, o) }); err != nil {
		return err
	}
	return deleteAll(ctx, adm, []string{g}, []string{t})
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
		if len(pending) == 0 {
			return nil
		}
		return fmt.Errorf("still there: %s", strings.Join(pending, "; "))
	})
}

// deletePrefixed deletes every topic whose name starts with prefix, and the
// groups given.
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
	if err != nil {
		return records, 0, err
	}
	dirs.Each(func(d kadm.DescribedLogDir) {
		for _, ps := range d.Topics {
			for _, p := range ps {
				if p.Topic == topic {
					bytes += p.Size
				}
			}
		}
	})
	return records, bytes, nil
}
