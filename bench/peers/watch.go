package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// watch reads topic from its start (committed records only, as a consumer
// of a transactional producer must) and calls f with every record and the
// moment it was polled, until f returns true. The topic may not exist yet:
// a contender creates its output when it starts.
func watch(ctx context.Context, broker, topic string, f func(r *kgo.Record, at time.Time) bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(250*time.Millisecond), // find a new topic quickly
		kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		at := time.Now()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var errs []error
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, kerr.UnknownTopicOrPartition) { // not created yet
				errs = append(errs, err)
			}
		})
		if len(errs) > 0 {
			return fmt.Errorf("reading %s: %w", topic, errors.Join(errs...))
		}
		for it := fetches.RecordIter(); !it.Done(); {
			if f(it.Next(), at) {
				return nil
			}
		}
	}
}

// totals is what an output topic says of the four statistics every
// contender computes, from the exact integers of picstats' JSON (the
// average itself is a float, formatted differently in Java and Go). The
// expected result is a totals too, complete and with avgCount == count, so
// an output is exact when its totals equal it.
type totals struct {
	count, total, avgCount, min, max int64
	seen                             [4]bool
}

// apply folds one output record (key = statistic name, value = its JSON
// result) into t; records of other statistics are ignored.
func (t *totals) apply(key string, value []byte) error {
	var v struct {
		Registrations *int64 `json:"registrations"`
		Total         *int64 `json:"total_weight_grams"`
		Min           *int64 `json:"min_weight_grams"`
		Max           *int64 `json:"max_weight_grams"`
	}
	if len(value) == 0 {
		return nil // a tombstone
	}
	if err := json.Unmarshal(value, &v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	set := func(i int, dst *int64, src *int64) {
		if src != nil {
			*dst, t.seen[i] = *src, true
		}
	}
	switch key {
	case "count":
		set(0, &t.count, v.Registrations)
	case "average_weight":
		if v.Total != nil && v.Registrations != nil {
			t.total, t.avgCount, t.seen[1] = *v.Total, *v.Registrations, true
		}
	case "min_weight":
		set(2, &t.min, v.Min)
	case "max_weight":
		set(3, &t.max, v.Max)
	}
	return nil
}

func (t totals) String() string {
	return fmt.Sprintf("count %d, sum %d (of %d), min %d, max %d", t.count, t.total, t.avgCount, t.min, t.max)
}

// awaitExact watches a contender's output until it shows exactly exp, and
// returns when it did; or the last totals seen when ctx ends first.
func awaitExact(ctx context.Context, broker, topic string, exp totals) (time.Time, totals, error) {
	var t totals
	var at time.Time
	err := watch(ctx, broker, topic, func(r *kgo.Record, polled time.Time) bool {
		at = polled
		return t.apply(string(r.Key), r.Value) == nil && t == exp // a bad output shows as a wrong result
	})
	return at, t, err
}
