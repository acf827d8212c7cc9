package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// startKafka starts Apache Kafka (benchkit.StartKafka) in the scratch
// folder and connects e.adm to it; the returned stop must be called even
// on error.
func (e *env) startKafka(ctx context.Context) (func(), error) {
	k, err := benchkit.StartKafka(ctx, filepath.Join(e.tmp, "kafka"))
	e.broker, e.adm = k.Broker, k.Adm
	return func() { k.Stop(e.o.logs) }, err
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
