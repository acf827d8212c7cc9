package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
)

// recover measures, o.runs times, on the state picstats left under prefix,
// the time from starting a processor with statistics stats until it has
// recovered its table ("processor ready" in its log), and from starting an
// API replica until /readyz answers 200 (and the count served is want).
// Both read the table's changelog, whose size is printed with it: it grows
// with the number of batches, not records, and compaction bounds it.
func (e *env) recover(ctx context.Context, label, prefix, stats string, want int64) error {
	table := string(cluster.DefaultNames(prefix).Table())
	records, bytes, err := topicSize(ctx, e.adm, table)
	if err != nil {
		return fmt.Errorf("recovery: size of %s: %w", table, err)
	}
	fmt.Printf("== recovery %s: %d updates written to the table changelog %s, %.1f KB on disk now ==\n", label, records, table, float64(bytes)/1024)
	var procs, apis []float64
	for i := range e.o.runs {
		p, note := e.recoverProcessor(ctx, prefix, stats)
		a, anote := e.recoverAPI(ctx, prefix, stats, want)
		fmt.Printf("  run %d: processor start → ready %s s %s; API replica start → ready %s s %s\n", i+1, f(p, 2), note, f(a, 2), anote)
		procs, apis = append(procs, p), append(apis, a)
	}
	fmt.Printf("recovery %s, medians over %d runs: processor %s s, API replica %s s (changelog: %d updates written, %.1f KB on disk)\n\n",
		label, e.o.runs, f(benchkit.Median(procs), 2), f(benchkit.Median(apis), 2), records, float64(bytes)/1024)
	return nil
}

func (e *env) recoverProcessor(ctx context.Context, prefix, stats string) (float64, string) {
	mark := benchkit.NewMarker("processor ready")
	p, err := benchkit.Start(ctx, e.log("recovery-processor"), mark, e.picstats, picstatsArgs("processor", e.broker, prefix, stats, partitions)...)
	if err != nil {
		return math.NaN(), err.Error()
	}
	defer p.Stop()
	if note := p.WaitReady(ctx, "processor", func() bool { return !math.IsNaN(mark.Since(p.Start)) }); note != "" {
		return math.NaN(), note
	}
	return mark.Since(p.Start), ""
}

func (e *env) recoverAPI(ctx context.Context, prefix, stats string, want int64) (float64, string) {
	a, base, err := e.startAPI(ctx, "recovery-api", prefix, stats)
	if err != nil {
		return math.NaN(), err.Error()
	}
	defer a.Stop()
	hc := &http.Client{Timeout: time.Second}
	var at time.Time
	if note := a.WaitReady(ctx, "api", func() bool {
		_, err := benchkit.Get(ctx, hc, base+"/readyz")
		at = time.Now()
		return err == nil
	}); note != "" {
		return math.NaN(), note
	}
	if err := checkCount(ctx, hc, base, want); err != nil {
		return at.Sub(a.Start).Seconds(), fmt.Sprintf("(WRONG: %v)", err)
	}
	return at.Sub(a.Start).Seconds(), "(count exact)"
}

// startAPI starts `picstats api` over prefix on a free port and returns it
// and its base URL.
func (e *env) startAPI(ctx context.Context, log, prefix, stats string) (*benchkit.Child, string, error) {
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	c, err := benchkit.Start(ctx, e.log(log), nil, e.picstats, picstatsArgs("api", e.broker, prefix, stats, 0, "--addr", addr)...)
	return c, "http://" + addr, err
}

// checkCount returns nil if the API at base serves count want.
func checkCount(ctx context.Context, hc *http.Client, base string, want int64) error {
	n, err := benchkit.GetCount(ctx, hc, base)
	if err == nil && n != want {
		err = fmt.Errorf("count %d, want %d", n, want)
	}
	return err
}

// live runs picstats (every statistic) with a datafeed at --live-rate for
// --live-duration, as in production, then measures recovery on the state
// that left: the table changelog then holds the open-batch updates of
// every snapshot interval, not only one update per closed batch as after a
// drain.
func (e *env) live(ctx context.Context) error {
	const prefix = "bench.live."
	n := int(float64(e.o.liveRate) * e.o.liveDuration.Seconds())
	if err := e.freshInput(ctx, prefix); err != nil {
		return err
	}
	fmt.Printf("== live: picstats with every statistic, a datafeed at %d records/s for %v (%d records) ==\n", e.o.liveRate, e.o.liveDuration, n)
	proc, err := benchkit.Start(ctx, e.log("live-processor"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, "all", partitions)...)
	if err != nil {
		return err
	}
	defer proc.Stop()
	feed, err := benchkit.Start(ctx, e.log("live-datafeed"), nil, e.picstats, "datafeed", "--brokers", e.broker, "--topic-prefix", prefix,
		"--partitions", strconv.Itoa(partitions), "--rate", strconv.Itoa(e.o.liveRate), "--count", strconv.Itoa(n), "--images", "images")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, e.o.liveDuration+2*time.Minute)
	defer cancel()
	err = watch(wctx, e.broker, string(cluster.DefaultNames(prefix).Stats), func(r *kgo.Record, _ time.Time) bool {
		count, ok := benchkit.ParseCount(r.Value)
		return string(r.Key) == "count" && ok && count == int64(n)
	})
	feed.Stop()
	if err != nil {
		proc.PrintTail("processor")
		return fmt.Errorf("the stats topic did not count %d records: %w", n, err)
	}
	proc.Stop()
	return e.recover(ctx, fmt.Sprintf("after %v of live operation at %d records/s", e.o.liveDuration, e.o.liveRate), prefix, "all", int64(n))
}
