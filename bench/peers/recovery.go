package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
)

// recovery measures, on the state picstats' last drain of b left behind,
// the time from starting a processor until it has recovered its table
// ("processor ready" in its log), and from starting an API replica until
// /readyz answers 200 (and /api/stats/count serves the exact count). Both
// read the group table's changelog, whose size is printed with it: it grows
// with the number of batches, not records, and compaction bounds it.
func (e *env) recovery(ctx context.Context, b *backlog) error {
	return e.recover(ctx, fmt.Sprintf("after draining %d records", b.n), b.prefix, statsList, b.exp.count)
}

// recover measures the recovery of a processor and an API replica with
// statistics stats on the state under prefix, whose count must be want.
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
		label, e.o.runs, f(median(procs), 2), f(median(apis), 2), records, float64(bytes)/1024)
	return nil
}

func (e *env) recoverProcessor(ctx context.Context, prefix, stats string) (float64, string) {
	mark := newMarker("processor ready")
	p, err := startChild(ctx, e.log("recovery-processor"), mark, e.picstats, picstatsArgs("processor", e.broker, prefix, stats)...)
	if err != nil {
		return math.NaN(), err.Error()
	}
	defer p.stop()
	if note := p.waitReady(ctx, "processor", func() bool { return !math.IsNaN(mark.since(p.start)) }); note != "" {
		return math.NaN(), note
	}
	return mark.since(p.start), ""
}

func (e *env) recoverAPI(ctx context.Context, prefix, stats string, want int64) (float64, string) {
	ports, err := freePorts(1)
	if err != nil {
		return math.NaN(), err.Error()
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	a, err := startChild(ctx, e.log("recovery-api"), nil, e.picstats,
		picstatsArgs("api", e.broker, prefix, stats, "--addr", strings.TrimPrefix(base, "http://"))...)
	if err != nil {
		return math.NaN(), err.Error()
	}
	defer a.stop()
	hc := &http.Client{Timeout: time.Second}
	var at time.Time
	note := a.waitReady(ctx, "api", func() bool {
		resp, err := hc.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		at = time.Now()
		return resp.StatusCode == http.StatusOK
	})
	if note != "" {
		return math.NaN(), note
	}
	if err := checkCount(hc, base, want); err != nil {
		return at.Sub(a.start).Seconds(), fmt.Sprintf("(WRONG: %v)", err)
	}
	return at.Sub(a.start).Seconds(), "(count exact)"
}

// checkCount returns nil if the API at base serves count want.
func checkCount(hc *http.Client, base string, want int64) error {
	body, err := get(hc, base+"/api/stats/count")
	if err != nil {
		return err
	}
	var v struct {
		Registrations int64 `json:"registrations"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Registrations != want {
		return fmt.Errorf("count %q, want %d", body, want)
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

// live runs picstats (every statistic) with a datafeed at --live-rate for
// --live-duration, as in production, then measures recovery on the state
// that left: the table changelog then holds the open-batch updates of every
// snapshot interval, not only one update per closed batch as after a drain.
func (e *env) live(ctx context.Context) error {
	const prefix = "bench.live."
	n := int(float64(e.o.liveRate) * e.o.liveDuration.Seconds())
	if err := deletePrefixed(ctx, e.adm, prefix, picstatsGroups(prefix)...); err != nil {
		return err
	}
	if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, prefix+"picture"); err != nil {
		return fmt.Errorf("create %spicture: %w", prefix, err)
	}
	fmt.Printf("== live: picstats with every statistic, a datafeed at %d records/s for %v (%d records) ==\n", e.o.liveRate, e.o.liveDuration, n)
	proc, err := startChild(ctx, e.log("live-processor"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, "all")...)
	if err != nil {
		return err
	}
	defer proc.stop()
	feed, err := startChild(ctx, e.log("live-datafeed"), nil, e.picstats, "datafeed", "--brokers", e.broker, "--topic-prefix", prefix,
		"--partitions", fmt.Sprint(partitions), "--rate", fmt.Sprint(e.o.liveRate), "--count", fmt.Sprint(n), "--images", "images")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, e.o.liveDuration+2*time.Minute)
	defer cancel()
	err = watch(wctx, e.broker, string(cluster.DefaultNames(prefix).Stats), func(r *kgo.Record, _ time.Time) bool {
		var t totals
		return string(r.Key) == "count" && t.apply("count", r.Value) == nil && t.count == int64(n)
	})
	feed.stop()
	if err != nil {
		proc.printTail("processor", 20)
		return fmt.Errorf("live: the stats topic did not count %d records: %w", n, err)
	}
	proc.stop()
	return e.recover(ctx, fmt.Sprintf("after %v of live operation at %d records/s", e.o.liveDuration, e.o.liveRate), prefix, "all", int64(n))
}
