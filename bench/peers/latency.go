package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// latency measures produce-to-output latency at a steady rate for picstats
// and the Kafka Streams contenders: each run starts the contender on a
// fresh input topic, waits until a warm-up record shows in its output, then
// produces --latency-rate records per second for --latency-duration. Record
// i (in produce order) is counted as seen at the first output whose count
// reaches i: the output cannot say which records a count includes, but at a
// steady rate all partitions advance together, so this is at most a few
// milliseconds early or late.
func (e *env) latency(ctx context.Context) error {
	n := int(float64(e.o.latencyRate) * e.o.latencyDuration.Seconds())
	fmt.Printf("== latency: %d records/s for %v (%d records), produce call → output topic shows them ==\n", e.o.latencyRate, e.o.latencyDuration, n)
	quantiles := []float64{0.5, 0.9, 0.99, 1}
	rows := [][]string{{"contender", "p50", "p90", "p99", "max", "ms"}}
	for _, name := range e.o.contenders {
		if name != "picstats" && !strings.HasPrefix(name, "kstreams") {
			continue
		}
		cols := make([][]float64, len(quantiles)) // per quantile, the runs' values
		for i := range e.o.runs {
			lat, err := e.latencyRun(ctx, name, i, n)
			if err != nil {
				fmt.Printf("  run %d %-16s FAILED: %v\n", i+1, name, err)
				continue
			}
			line := []any{i + 1, name}
			for k, q := range quantiles {
				cols[k] = append(cols[k], benchkit.Rank(lat, q))
				line = append(line, benchkit.Rank(lat, q))
			}
			fmt.Printf("  run %d %-16s p50 %6.1f  p90 %6.1f  p99 %6.1f  max %6.1f ms\n", line...)
		}
		row := []string{name}
		for _, c := range cols {
			row = append(row, f(benchkit.Median(c), 1))
		}
		rows = append(rows, append(row, ""))
	}
	fmt.Printf("\nlatency, medians over %d runs (ms):\n", e.o.runs)
	printTable(rows)
	return nil
}

// latencyRun returns the sorted latencies in ms of one run.
func (e *env) latencyRun(ctx context.Context, name string, run, n int) ([]float64, error) {
	prefix := fmt.Sprintf("bench.latency-%s-%d.", name, run+1)
	if err := e.freshInput(ctx, prefix); err != nil {
		return nil, err
	}
	defer deletePrefixed(context.Background(), e.adm, prefix, picstatsGroups(prefix)...)
	c, _, output, cleanup, err := e.start(ctx, name, prefix, prefix+"picture", "latency")
	defer cleanup()
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker), kgo.DefaultProduceTopic(prefix+"picture"), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	produce := func(i int) {
		cl.Produce(ctx, registration(i), func(_ *kgo.Record, err error) {
			if err != nil {
				fmt.Printf("    produce: %v\n", err)
			}
		})
	}
	wctx, cancel := c.Bound(ctx, 3*time.Minute)
	defer cancel()
	w := &latencyWatch{n: n, sent: make([]atomic.Int64, n+1), next: 1, warm: make(chan struct{}), done: make(chan struct{})}
	werr := make(chan error, 1)
	go func() { werr <- watch(wctx, e.broker, output, w.seen) }()
	produce(0) // the warm-up record: the contender is up once its output counts it
	select {
	case <-w.warm:
	case err := <-werr:
		return nil, fmt.Errorf("waiting for the warm-up record: %w (log: %s)", err, c.Log)
	}
	benchkit.Pace(ctx, float64(e.o.latencyRate), n, func(i int) { w.sent[i].Store(time.Now().UnixNano()); produce(i) })
	select {
	case <-w.done:
	case err := <-werr:
		return nil, fmt.Errorf("not every record seen: %w (log: %s)", err, c.Log)
	}
	slices.Sort(w.lat)
	return w.lat, nil
}

// latencyWatch turns the counts an output reports, as they are polled,
// into the latencies of records 1..n.
type latencyWatch struct {
	n          int
	sent       []atomic.Int64 // UnixNano of the produce call of record i (1-based)
	lat        []float64      // ms, in produce order
	next       int            // the first measured record not yet seen
	warm, done chan struct{}
}

// seen is the watcher's callback; it returns true once all n are seen.
func (w *latencyWatch) seen(r *kgo.Record, at time.Time) bool {
	count, ok := benchkit.ParseCount(r.Value)
	if string(r.Key) != "count" || !ok || count < 1 {
		return false
	}
	if w.lat == nil {
		w.lat = make([]float64, 0, w.n)
		close(w.warm)
	}
	for ; int64(w.next) <= count-1 && w.next <= w.n; w.next++ {
		w.lat = append(w.lat, float64(at.UnixNano()-w.sent[w.next].Load())/1e6)
	}
	if w.next > w.n {
		close(w.done)
		return true
	}
	return false
}
