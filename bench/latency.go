package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/table"
)

// sentLog holds the send time of every acknowledged record until the View
// includes it, then its latency.
type sentLog struct {
	mu   sync.Mutex
	sent map[int32]map[int64]time.Time // partition → offset → send time
	lat  []time.Duration
}

// acked notes a record the broker acknowledged, handed to the producer at at.
func (l *sentLog) acked(r *kgo.Record, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent[r.Partition] == nil {
		l.sent[r.Partition] = map[int64]time.Time{}
	}
	l.sent[r.Partition][r.Offset] = at
}

// seen takes the records the View covers at now out of the log.
func (l *sentLog) seen(now time.Time, covered map[int32]int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, offs := range l.sent {
		for o, at := range offs {
			if o <= covered[p] {
				l.lat = append(l.lat, now.Sub(at))
				delete(offs, o)
			}
		}
	}
}

// latency runs a processor on fresh topics, produces o.rate records/s for
// o.duration and measures, per record, the time from handing it to the
// producer to the moment the View of the table includes it.
func latency(ctx context.Context, cfg cluster.Config, o *options) error {
	c := cfg
	c.Names = cluster.DefaultNames(cfg.Names.Prefix + "latency.")
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		return err
	}
	l := &sentLog{sent: map[int32]map[int64]time.Time{}}
	stopView, err := startView(ctx, c, o.batch, l.seen)
	if err != nil {
		return err
	}
	defer stopView()
	p, err := newProcessor(c, o)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	perr := make(chan error, 1)
	go func() { perr <- p.Run(pctx, c) }()
	defer func() { cancel(); <-perr }()
	time.Sleep(5 * time.Second) // let the processor join its group: start-up is not latency
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	benchkit.Pace(ctx, o.rate, int(o.duration.Seconds()*o.rate), func(int) {
		at := time.Now()
		cl.Produce(ctx, &kgo.Record{Topic: string(c.Names.Pictures), Value: codec.Encode(registration(rng, o.pictures))}, func(r *kgo.Record, err error) {
			if err == nil {
				l.acked(r, at)
			}
		})
	})
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	err = benchkit.Poll(ctx, 30*time.Second, 20*time.Millisecond, func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		left := 0
		for _, offs := range l.sent {
			left += len(offs)
		}
		if left > 0 || len(l.lat) == 0 {
			return fmt.Errorf("%d records never became visible", left)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(l.lat)
	pct := func(q float64) time.Duration { return benchkit.Rank(l.lat, q).Round(100 * time.Microsecond) }
	fmt.Printf("latency: %d records at %.0f records/s, from produce to the table View: p50 %v  p90 %v  p99 %v  max %v\n",
		len(l.lat), o.rate, pct(0.5), pct(0.9), pct(0.99), pct(1))
	return nil
}

// startView runs a goka View of the group table, like the API's, and calls
// onCount whenever the count statistic changes, with the last offset of
// each input partition that it includes.
func startView(ctx context.Context, c cluster.Config, batch int64, onCount func(time.Time, map[int32]int64)) (func(), error) {
	cb := func(uctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
		if err := goka.DefaultUpdate(uctx, s, key, value); err != nil || key != "count" {
			return err
		}
		now := time.Now()
		var v table.Value
		if err := v.UnmarshalBinary(value); err != nil {
			return err
		}
		covered := map[int32]int64{}
		for _, p := range v.Parts {
			covered[p.Partition] = max((p.ClosedThrough+1)*batch-1, -1)
			if p.Open != nil {
				covered[p.Partition] = max(covered[p.Partition], p.Open.Last)
			}
		}
		onCount(now, covered)
		return nil
	}
	var view *goka.View
	err := benchkit.Poll(ctx, time.Minute, 100*time.Millisecond, func() (err error) {
		view, err = goka.NewView(c.Brokers, c.Names.Table(), new(gokacodec.Bytes), append(c.ViewOptions(), goka.WithViewCallback(cb))...)
		return err
	})
	if err != nil {
		return nil, err
	}
	vctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = view.Run(vctx) }()
	return func() { cancel(); <-done }, nil
}
