// Command bench measures picstats' engine on one broker in one run:
//
//   - drain: records/s of the processor draining a backlog of N records,
//     against a bare franz-go consumer that only reads and decodes the same
//     topic (the limit), and their ratio;
//   - latency: produce-to-table latency percentiles at a fixed rate, taken
//     from a goka View like the one the API serves from.
//
// Usage: go run ./bench [--brokers host:port] [--records N] [--runs R] [--rate r] [--duration d]
//
// --runs 0 measures latency only.
//
// Without --brokers it starts the embedded broker in this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

var drainProfile string

func main() {
	brokers := flag.String("brokers", os.Getenv("KAFKA_BROKER"), "Kafka host:port list (default: an embedded broker)")
	records := flag.Int("records", 5_000_000, "records in the backlog to drain (a 1M backlog drains in under a second: too short to measure on a shared machine)")
	runs := flag.Int("runs", 3, "drain runs; the median is reported (0: latency only)")
	partitions := flag.Int("partitions", 4, "partitions of the picture topic")
	rate := flag.Float64("rate", 200, "records/s for the latency run")
	duration := flag.Duration("duration", 20*time.Second, "length of the latency run")
	batch := flag.Int64("batch-size", processor.DefaultBatchSize, "the processor's batch size")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&drainProfile, "drainprofile", "", "write a CPU profile of the first processor drain to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*brokers, *records, *runs, *partitions, *rate, *duration, *batch); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(brokerList string, records, runs, partitions int, rate float64, duration time.Duration, batch int64) error {
	var brokers []string
	where := "embedded kfake broker (in this process)"
	if brokerList == "" {
		e, err := cluster.StartEmbedded()
		if err != nil {
			return err
		}
		defer e.Close()
		brokers = e.Brokers()
	} else {
		var err error
		if brokers, err = cluster.ParseBrokers(brokerList); err != nil {
			return err
		}
		where = "Kafka at " + brokerList
	}
	fmt.Printf("picstats engine benchmark: %s, %d cores, %s, batch size %d\n\n", where, runtime.NumCPU(), runtime.Version(), batch)

	cfg := cluster.Config{Brokers: brokers, Names: cluster.DefaultNames(fmt.Sprintf("bench-%d.", rand.IntN(1e6))),
		Partitions: partitions, Replication: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	if err := cluster.EnsureTopics(ctx, cfg); err != nil {
		return err
	}
	if runs > 0 {
		if err := drains(ctx, cfg, records, runs, partitions, batch); err != nil {
			return err
		}
	}
	return latency(ctx, cfg, rate, duration, batch)
}

// drains produces the backlog, then drains it runs times with a bare
// consumer and with a processor, and prints their rates.
func drains(ctx context.Context, cfg cluster.Config, records, runs, partitions int, batch int64) error {
	start := time.Now()
	size, err := produceBacklog(ctx, cfg, records)
	if err != nil {
		return err
	}
	fmt.Printf("backlog: %d records (%.0f bytes on average, 1%% invalid, keys null or picture_id) on %d partitions, produced in %v\n\n",
		records, size, partitions, time.Since(start).Round(time.Millisecond))

	var bare, engine, engineWall, ratios []float64
	for i := range runs {
		b, err := bareConsumer(ctx, cfg, records)
		if err != nil {
			return err
		}
		names := cfg.Names
		names.Group = goka.Group(fmt.Sprintf("%sdrain-%d", names.Prefix, i))
		e, wall, err := drain(ctx, cfg, names, records, batch)
		if err != nil {
			return err
		}
		fmt.Printf("run %d: bare consumer %9.0f records/s   processor %9.0f records/s   ratio %.2f   (start to exact result in the View: %9.0f records/s)\n", i+1, b, e, e/b, wall)
		bare, engine, engineWall, ratios = append(bare, b), append(engine, e), append(engineWall, wall), append(ratios, e/b)
	}
	mb, me, mw := median(bare), median(engine), median(engineWall)
	// The ratio is taken within each run, as broker and machine vary
	// between runs; its median is the figure to quote.
	fmt.Printf("\nmedian of %d: ratio %.2f; bare consumer %.0f records/s, processor %.0f records/s, start to exact result %.0f records/s\n\n",
		runs, median(ratios), mb, me, mw)
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// produceBacklog writes n records and returns their mean value size.
func produceBacklog(ctx context.Context, cfg cluster.Config, n int) (float64, error) {
	cl, err := cfg.Client(kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var bytes int
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		r := &kgo.Record{Topic: string(cfg.Names.Pictures)}
		if i%100 == 99 {
			r.Value = []byte(`{"picture_id":"000000243626","weight":-1}`)
		} else {
			reg := codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(100)), Weight: 20 + rng.Int64N(4980)}
			r.Value = codec.Encode(reg)
			if i%2 == 0 {
				r.Key = []byte(reg.PictureID)
			}
		}
		bytes += len(r.Value)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}
	return float64(bytes) / float64(n), firstErr
}

// bareConsumer reads and decodes every record of the topic, decoding the
// partitions of each fetch in parallel as goka's partition processors do:
// the limit for anything that must look at every record.
func bareConsumer(ctx context.Context, cfg cluster.Config, n int) (float64, error) {
	cl, err := cfg.Client(kgo.ConsumeTopics(string(cfg.Names.Pictures)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var first time.Time
	seen := 0
	for seen < n {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			return 0, err
		}
		if first.IsZero() {
			first = time.Now()
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, r := range p.Records {
					_, _ = codec.Decode(r.Value)
				}
				mu.Lock()
				seen += len(p.Records)
				mu.Unlock()
			}()
		})
		wg.Wait()
	}
	return float64(n) / time.Since(first).Seconds(), nil
}

// startView runs a goka View of the group table, like the API's, and calls
// onCount whenever the count statistic changes, with the last offset of
// each input partition that it includes.
func startView(ctx context.Context, cfg cluster.Config, names cluster.Names, batch int64, onCount func(time.Time, map[int32]int64)) (func(), error) {
	cb := func(uctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
		if err := goka.DefaultUpdate(uctx, s, key, value); err != nil {
			return err
		}
		if key != "count" {
			return nil
		}
		now := time.Now()
		var v table.Value
		if err := v.UnmarshalBinary(value); err != nil {
			return err
		}
		covered := map[int32]int64{}
		for _, p := range v.Parts {
			last := (p.ClosedThrough+1)*batch - 1
			if p.ClosedThrough < 0 {
				last = -1
			}
			if p.Open != nil {
				last = max(last, p.Open.Last)
			}
			covered[p.Partition] = last
		}
		onCount(now, covered)
		return nil
	}
	var view *goka.View
	var err error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		view, err = goka.NewView(cfg.Brokers, names.Table(), new(gokacodec.Bytes), append(cfg.ViewOptions(), goka.WithViewCallback(cb))...)
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	vctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = view.Run(vctx) }()
	return func() { cancel(); <-done }, nil
}

// drain runs a processor with a fresh group over the backlog and returns
// records/s of its input stage from the first record fetched to the last one
// handled (as the bare consumer is measured), and records/s from starting
// the processor to the moment a View of the table shows the exact result
// for every record.
func drain(ctx context.Context, cfg cluster.Config, names cluster.Names, n int, batch int64) (float64, float64, error) {
	ends, err := endOffsets(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	c := cfg
	c.Names = names
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		return 0, 0, err
	}
	done := make(chan struct{})
	var once sync.Once
	var last time.Time
	stopView, err := startView(ctx, c, names, batch, func(now time.Time, covered map[int32]int64) {
		complete := len(covered) == len(ends)
		for p, end := range ends {
			if covered[p] < end-1 {
				complete = false
			}
		}
		if complete {
			last = now
			once.Do(func() { close(done) })
		}
	})
	if err != nil {
		return 0, 0, err
	}
	defer stopView()
	var handled int64
	var first, lastHandled time.Time // only the input stage's goroutine writes them, before done
	hook := func(n int, polled time.Time) {
		if handled == 0 {
			first = polled
		}
		handled += int64(n)
		lastHandled = time.Now()
	}
	p, err := processor.New(names, stats.All(), c.Logger, processor.WithBatchSize(batch), processor.WithInputHook(hook))
	if err != nil {
		return 0, 0, err
	}
	if drainProfile != "" {
		f, err := os.Create(drainProfile)
		if err != nil {
			return 0, 0, err
		}
		drainProfile = "" // the first drain only
		if err := pprof.StartCPUProfile(f); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	var runErr error
	ran := make(chan struct{})
	start := time.Now()
	go func() { defer close(ran); runErr = p.Run(pctx, c) }()
	defer func() { cancel(); <-ran }()
	select {
	case <-done:
	case <-ran:
		return 0, 0, fmt.Errorf("processor stopped: %v", runErr)
	case <-time.After(10 * time.Minute):
		return 0, 0, errors.New("the processor did not drain the backlog in 10 minutes")
	}
	cancel()
	<-ran // the hook's writes happen before Run returns
	if handled != int64(n) {
		return 0, 0, fmt.Errorf("the processor handled %d records, want %d", handled, n)
	}
	return float64(n) / lastHandled.Sub(first).Seconds(), float64(n) / last.Sub(start).Seconds(), nil
}

func endOffsets(ctx context.Context, cfg cluster.Config) (map[int32]int64, error) {
	cl, err := cfg.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, string(cfg.Names.Pictures))
	if err != nil {
		return nil, err
	}
	ends := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
}

// latency produces at a fixed rate and measures, per record, the time from
// handing it to the producer to the moment the View of the table includes it.
func latency(ctx context.Context, cfg cluster.Config, rate float64, d time.Duration, batch int64) error {
	names := cluster.DefaultNames(fmt.Sprintf("%slatency.", cfg.Names.Prefix))
	c := cfg
	c.Names = names
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		return err
	}
	var mu sync.Mutex
	sent := map[int32]map[int64]time.Time{} // partition → offset → send time
	pending := map[*kgo.Record]time.Time{}
	var lat []time.Duration
	stopView, err := startView(ctx, c, names, batch, func(now time.Time, covered map[int32]int64) {
		mu.Lock()
		defer mu.Unlock()
		for p, offs := range sent {
			for o, at := range offs {
				if o <= covered[p] {
					lat = append(lat, now.Sub(at))
					delete(offs, o)
				}
			}
		}
	})
	if err != nil {
		return err
	}
	defer stopView()
	p, err := processor.New(names, stats.All(), c.Logger, processor.WithBatchSize(batch))
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	perr := make(chan error, 1)
	go func() { perr <- p.Run(pctx, c) }()
	defer func() { cancel(); <-perr }()

	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	time.Sleep(5 * time.Second) // let the processor join its group: start-up is not latency
	rng := rand.New(rand.NewPCG(3, 4))
	interval := time.Duration(float64(time.Second) / rate)
	n := int(d.Seconds() * rate)
	next := time.Now()
	for range n {
		reg := codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(100)), Weight: 20 + rng.Int64N(4980)}
		r := &kgo.Record{Topic: string(names.Pictures), Value: codec.Encode(reg)}
		mu.Lock()
		pending[r] = time.Now()
		mu.Unlock()
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			at := pending[r]
			delete(pending, r)
			if err == nil {
				if sent[r.Partition] == nil {
					sent[r.Partition] = map[int64]time.Time{}
				}
				sent[r.Partition][r.Offset] = at
			}
		})
		next = next.Add(interval)
		time.Sleep(time.Until(next))
	}
	_ = cl.Flush(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		left := 0
		for _, offs := range sent {
			left += len(offs)
		}
		got := len(lat)
		mu.Unlock()
		if left == 0 && got > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d records never became visible", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))].Round(100 * time.Microsecond) }
	fmt.Printf("latency: %d records at %.0f records/s, from produce to the table View: p50 %v  p90 %v  p99 %v  max %v\n",
		len(lat), rate, pct(0.5), pct(0.9), pct(0.99), lat[len(lat)-1].Round(100*time.Microsecond))
	return nil
}
