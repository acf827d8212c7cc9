package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/processor"
)

// drains produces the backlog, then drains it o.runs times with the bare
// consumer and, in each run, with a processor per --windows spec, and
// prints their rates.
func drains(ctx context.Context, cfg cluster.Config, o *options) error {
	start, rng, bytes := time.Now(), rand.New(rand.NewPCG(1, 2)), 0
	err := benchkit.Produce(ctx, []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(string(cfg.Names.Pictures)),
		kgo.ProducerLinger(5 * time.Millisecond), kgo.MaxBufferedRecords(100_000)}, o.records, func(i int) *kgo.Record {
		r := &kgo.Record{Value: []byte(`{"picture_id":"000000243626","weight":-1}`)} // 1% invalid
		if i%100 != 99 {
			reg := registration(rng, o.pictures)
			if r.Value = codec.Encode(reg); i%2 == 0 {
				r.Key = []byte(reg.PictureID)
			}
		}
		bytes += len(r.Value)
		return r
	})
	if err != nil {
		return err
	}
	fmt.Printf("backlog: %d records (%.0f bytes on average, 1%% invalid, keys null or picture_id) on %d partitions, produced in %v\n\n",
		o.records, float64(bytes)/float64(o.records), o.partitions, time.Since(start).Round(time.Millisecond))
	// per --windows spec: the processor's rates, and its ratios to the bare
	// consumer of the same run
	var bare []float64
	engine, wall, ratios := make([][]float64, len(o.configs)), make([][]float64, len(o.configs)), make([][]float64, len(o.configs))
	gcs := make([][]float64, len(o.configs))
	for i := range o.runs {
		b, err := benchkit.ReadAll(ctx, cfg.Brokers, string(cfg.Names.Pictures))
		if err != nil {
			return err
		}
		bare = append(bare, b.Rate())
		fmt.Printf("run %d: bare consumer %9.0f records/s\n", i+1, b.Rate())
		for j, w := range o.configs {
			c := cfg
			c.Names.Group = goka.Group(fmt.Sprintf("%sdrain-%d-%d", c.Names.Prefix, i, j))
			o.windows = w.windows
			e, t, u, err := drain(ctx, c, o)
			if err != nil {
				return fmt.Errorf("--windows %s: %w", w.spec, err)
			}
			fmt.Printf("  --windows %-20s processor %9.0f records/s   ratio %.2f   (start to exact result in the View: %9.0f records/s)\n",
				w.spec, e, e/b.Rate(), t)
			fmt.Printf("  %-30s %.2f CPU s per million records, GC %.1f%% of it; %.2f allocations, %.0f bytes allocated per record\n",
				"", u.cpu/float64(o.records)*1e6, 100*u.gc/u.cpu, u.objects/float64(o.records), u.bytes/float64(o.records))
			engine[j], wall[j], ratios[j] = append(engine[j], e), append(wall[j], t), append(ratios[j], e/b.Rate())
			gcs[j] = append(gcs[j], u.gc/u.cpu)
		}
	}
	// The ratio is taken within each run, as broker and machine vary
	// between runs; its median is the figure to quote.
	fmt.Printf("\nmedian of %d runs: bare consumer %.0f records/s\n", o.runs, benchkit.Median(bare))
	for j, w := range o.configs {
		fmt.Printf("  --windows %-20s ratio %.2f; processor %.0f records/s, start to exact result %.0f records/s; GC %.1f%% of CPU\n",
			w.spec, benchkit.Median(ratios[j]), benchkit.Median(engine[j]), benchkit.Median(wall[j]), 100*benchkit.Median(gcs[j]))
	}
	fmt.Println()
	return nil
}

// registration is a random valid registration of one of pictures, 20 to
// 4999 g.
func registration(rng *rand.Rand, pictures int) codec.Registration {
	return codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(pictures)), Weight: 20 + rng.Int64N(4980)}
}

// drain runs a processor with c's fresh group over the backlog and returns
// records/s of its input stage from the first record fetched to the last
// one handled (as the bare consumer is measured), records/s from starting
// the processor to the moment a View of the table shows the exact result
// for every record, and what this process used meanwhile.
func drain(ctx context.Context, c cluster.Config, o *options) (float64, float64, usage, error) {
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		return 0, 0, usage{}, err
	}
	ends, err := benchkit.EndOffsets(ctx, c.Brokers, string(c.Names.Pictures))
	if err != nil {
		return 0, 0, usage{}, err
	}
	complete, once := make(chan time.Time, 1), sync.Once{}
	stopView, err := startView(ctx, c, o.batch, func(now time.Time, covered map[int32]int64) {
		for p, end := range ends {
			if c, ok := covered[p]; !ok || c < end-1 {
				return
			}
		}
		once.Do(func() { complete <- now })
	})
	if err != nil {
		return 0, 0, usage{}, err
	}
	defer stopView()
	var handled int64
	var first, last time.Time // only the input stage's goroutine writes them, before Run returns
	p, err := newProcessor(c, o, processor.WithInputHook(func(n int, polled time.Time) {
		if handled == 0 {
			first = polled
		}
		handled, last = handled+int64(n), time.Now()
	}))
	if err != nil {
		return 0, 0, usage{}, err
	}
	if stop := startProfile(&o.drainProfile); stop != nil {
		defer stop()
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	ran, start, before := make(chan struct{}), time.Now(), readUsage()
	go func() { defer close(ran); runErr = p.Run(pctx, c) }()
	var done time.Time
	select {
	case done = <-complete:
		cancel()
		<-ran // the hook's writes happen before Run returns
	case <-ran:
		return 0, 0, usage{}, fmt.Errorf("processor stopped: %w", runErr)
	case <-time.After(10 * time.Minute):
		cancel()
		<-ran
		return 0, 0, usage{}, fmt.Errorf("the processor did not drain the backlog in 10 minutes")
	}
	used := readUsage().minus(before)
	if handled != int64(o.records) {
		return 0, 0, usage{}, fmt.Errorf("the processor handled %d records, want %d", handled, o.records)
	}
	n := float64(o.records)
	return n / last.Sub(first).Seconds(), n / done.Sub(start).Seconds(), used, nil
}

// usage is what this process used, from the runtime's own accounting: CPU
// seconds of Go code and runtime together, of them the garbage
// collector's, and heap allocations. The processor, its View and the
// table stage all count (and, with the embedded broker, the broker).
type usage struct{ cpu, gc, objects, bytes float64 }

var usageMetrics = []string{"/cpu/classes/total:cpu-seconds", "/cpu/classes/idle:cpu-seconds", "/cpu/classes/gc/total:cpu-seconds",
	"/gc/heap/allocs:objects", "/gc/heap/allocs:bytes"}

func readUsage() usage {
	runtime.GC() // the runtime updates its CPU classes at each cycle: start and end on one
	s := make([]metrics.Sample, len(usageMetrics))
	for i, name := range usageMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	f := func(i int) float64 {
		if v := s[i].Value; v.Kind() == metrics.KindFloat64 {
			return v.Float64()
		} else if v.Kind() == metrics.KindUint64 {
			return float64(v.Uint64())
		}
		return 0
	}
	return usage{cpu: f(0) - f(1), gc: f(2), objects: f(3), bytes: f(4)}
}

func (u usage) minus(v usage) usage {
	return usage{u.cpu - v.cpu, u.gc - v.gc, u.objects - v.objects, u.bytes - v.bytes}
}
