package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
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
	var names []string
	for _, c := range []string{"picstats", "kstreams-alos", "kstreams-eos", "kstreams-pre-eos"} {
		if slices.Contains(e.o.contenders, c) {
			names = append(names, c)
		}
	}
	n := int(float64(e.o.latencyRate) * e.o.latencyDuration.Seconds())
	fmt.Printf("== latency: %d records/s for %v (%d records), produce call → output topic shows them ==\n", e.o.latencyRate, e.o.latencyDuration, n)
	type row struct {
		name                string
		p50, p90, p99, maxv []float64
	}
	var rows []row
	for _, name := range names {
		r := row{name: name}
		for i := range e.o.runs {
			lat, err := e.latencyRun(ctx, name, i, n)
			if err != nil {
				fmt.Printf("  run %d %-16s FAILED: %v\n", i+1, name, err)
				continue
			}
			p := func(q float64) float64 { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
			fmt.Printf("  run %d %-16s p50 %6.1f  p90 %6.1f  p99 %6.1f  max %6.1f ms\n", i+1, name, p(0.5), p(0.9), p(0.99), lat[len(lat)-1])
			r.p50, r.p90, r.p99, r.maxv = append(r.p50, p(0.5)), append(r.p90, p(0.9)), append(r.p99, p(0.99)), append(r.maxv, lat[len(lat)-1])
		}
		rows = append(rows, r)
	}
	fmt.Printf("\nlatency, medians over %d runs (ms):\n%-16s %8s %8s %8s %8s\n", e.o.runs, "contender", "p50", "p90", "p99", "max")
	for _, r := range rows {
		fmt.Printf("%-16s %8s %8s %8s %8s\n", r.name, f(median(r.p50), 1), f(median(r.p90), 1), f(median(r.p99), 1), f(median(r.maxv), 1))
	}
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

	var c *child
	var output string
	switch name {
	case "picstats":
		var err error
		c, err = startChild(ctx, e.log("latency-picstats"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, statsList)...)
		if err != nil {
			return nil, err
		}
		output = string(cluster.DefaultNames(prefix).Stats)
	default:
		var cleanup func()
		var err error
		c, _, output, cleanup, err = e.startKStreams(ctx, input, name, "latency")
		defer cleanup()
		if err != nil {
			return nil, err
		}
	}
	defer c.stop()

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

	// The watcher: counts reported by the output, as they are polled.
	sent := make([]atomic.Int64, n+1) // UnixNano of the produce call of record i (1-based)
	lat := make([]float64, 0, n)
	warm := make(chan struct{})
	done := make(chan struct{})
	wctx, cancel := c.bound(ctx, 3*time.Minute)
	defer cancel()
	werr := make(chan error, 1)
	go func() {
		next := 1 // the first measured record not yet seen
		warmed := false
		werr <- watch(wctx, e.broker, output, func(r *kgo.Record, at time.Time) bool {
			if string(r.Key) != "count" {
				return false
			}
			var v struct{ Registrations int }
			if json.Unmarshal(r.Value, &v) != nil || v.Registrations < 1 {
				return false
			}
			if !warmed {
				warmed = true
				close(warm)
			}
			for ; next <= v.Registrations-1 && next <= n; next++ {
				lat = append(lat, float64(at.UnixNano()-sent[next].Load())/1e6)
			}
			if next > n {
				close(done)
				return true
			}
			return false
		})
	}()

	produce(0) // the warm-up record: the contender is up once its output counts it
	select {
	case <-warm:
	case err := <-werr:
		return nil, fmt.Errorf("waiting for the warm-up record: %w (log: %s)", err, c.log)
	}
	period := time.Second / time.Duration(e.o.latencyRate)
	start := time.Now()
	for i := 1; i <= n; i++ {
		if d := time.Until(start.Add(time.Duration(i-1) * period)); d > 0 {
			time.Sleep(d)
		}
		sent[i].Store(time.Now().UnixNano())
		produce(i)
	}
	select {
	case <-done:
	case err := <-werr:
		return nil, fmt.Errorf("not every record seen: %w (log: %s)", err, c.log)
	}
	if len(lat) != n {
		return nil, fmt.Errorf("%d of %d records seen", len(lat), n)
	}
	slices.Sort(lat)
	return lat, nil
}
