package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
)

var quantiles = []float64{0.5, 0.9, 0.99, 1}

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
	t := benchkit.NewTable("contender", "p50", "p90", "p99", "max")
	for _, name := range []string{"picstats", "kstreams-alos", "kstreams-eos", "kstreams-pre-eos"} {
		if !slices.Contains(e.o.contenders, name) {
			continue
		}
		cols := make([][]float64, len(quantiles)) // per quantile, the runs' values
		for i := range e.o.runs {
			lat, err := e.latencyRun(ctx, name, i, n)
			if err != nil {
				fmt.Printf("  run %d %-16s FAILED: %v\n", i+1, name, err)
				continue
			}
			for k, q := range quantiles {
				cols[k] = append(cols[k], benchkit.Rank(lat, q))
			}
			fmt.Printf("  run %d %-16s p50 %6.1f  p90 %6.1f  p99 %6.1f  max %6.1f ms\n", i+1, name, cols[0][len(cols[0])-1],
				cols[1][len(cols[1])-1], cols[2][len(cols[2])-1], cols[3][len(cols[3])-1])
		}
		row := []any{name}
		for _, c := range cols {
			row = append(row, benchkit.F(benchkit.Median(c), 1))
		}
		t.Row(row...)
	}
	fmt.Printf("\nlatency, medians over %d runs (ms):\n", e.o.runs)
	t.Print(os.Stdout)
	fmt.Println()
	return nil
}

// latencyRun returns the sorted latencies in ms of one run.
func (e *env) latencyRun(ctx context.Context, name string, run, n int) ([]float64, error) {
	prefix := fmt.Sprintf("bench.latency-%s-%d.", name, run+1)
	input := prefix + "picture"
	if err := deletePrefixed(ctx, e.adm, prefix, picstatsGroups(prefix)...); err != nil {
		return nil, err
	}
	if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, input); err != nil {
		return nil, fmt.Errorf("create %s: %w", input, err)
	}
	defer deletePrefixed(context.Background(), e.adm, prefix, picstatsGroups(prefix)...)
	c, output, cleanup, err := e.startLatencyContender(ctx, name, prefix)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker), kgo.DefaultProduceTopic(input), kgo.ProducerLinger(0))
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
	w := newLatencyWatch(n)
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

// startLatencyContender starts contender name over prefix's input topic
// and returns it, its output topic and a cleanup to call in any case.
func (e *env) startLatencyContender(ctx context.Context, name, prefix string) (*benchkit.Child, string, func(), error) {
	if name != "picstats" {
		c, _, output, cleanup, err := e.startKStreams(ctx, prefix+"picture", name, "latency")
		return c, output, cleanup, err
	}
	c, err := benchkit.Start(ctx, e.log("latency-picstats"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, statsList)...)
	return c, string(cluster.DefaultNames(prefix).Stats), func() {}, err
}

// latencyWatch turns the counts an output reports, as they are polled,
// into the latencies of records 1..n.
type latencyWatch struct {
	n          int
	sent       []atomic.Int64 // UnixNano of the produce call of record i (1-based)
	lat        []float64      // ms, in produce order
	next       int            // the first measured record not yet seen
	warmed     bool
	warm, done chan struct{}
}

func newLatencyWatch(n int) *latencyWatch {
	return &latencyWatch{n: n, sent: make([]atomic.Int64, n+1), lat: make([]float64, 0, n), next: 1,
		warm: make(chan struct{}), done: make(chan struct{})}
}

// seen is the watcher's callback; it returns true once all n are seen.
func (w *latencyWatch) seen(r *kgo.Record, at time.Time) bool {
	count, ok := benchkit.ParseCount(r.Value)
	if string(r.Key) != "count" || !ok || count < 1 {
		return false
	}
	if !w.warmed {
		w.warmed = true
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
