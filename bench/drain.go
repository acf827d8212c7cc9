package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

// drains produces the backlog, then drains it o.runs times with the bare
// consumer and with a processor, and prints their rates.
func drains(ctx context.Context, cfg cluster.Config, o *options) error {
	start := time.Now()
	size, err := produceBacklog(ctx, cfg, o.records)
	if err != nil {
		return err
	}
	fmt.Printf("backlog: %d records (%.0f bytes on average, 1%% invalid, keys null or picture_id) on %d partitions, produced in %v\n\n",
		o.records, size, o.partitions, time.Since(start).Round(time.Millisecond))
	var bare, engine, wall, ratios []float64
	for i := range o.runs {
		b, err := benchkit.ReadAll(ctx, cfg.Brokers, string(cfg.Names.Pictures))
		if err != nil {
			return err
		}
		names := cfg.Names
		names.Group = goka.Group(fmt.Sprintf("%sdrain-%d", names.Prefix, i))
		e, w, err := drain(ctx, cfg, names, o)
		if err != nil {
			return err
		}
		fmt.Printf("run %d: bare consumer %9.0f records/s   processor %9.0f records/s   ratio %.2f   (start to exact result in the View: %9.0f records/s)\n",
			i+1, b.Rate(), e, e/b.Rate(), w)
		bare, engine, wall, ratios = append(bare, b.Rate()), append(engine, e), append(wall, w), append(ratios, e/b.Rate())
	}
	// The ratio is taken within each run, as broker and machine vary
	// between runs; its median is the figure to quote.
	fmt.Printf("\nmedian of %d: ratio %.2f; bare consumer %.0f records/s, processor %.0f records/s, start to exact result %.0f records/s\n\n",
		o.runs, benchkit.Median(ratios), benchkit.Median(bare), benchkit.Median(engine), benchkit.Median(wall))
	return nil
}

// produceBacklog writes n records and returns their mean value size.
func produceBacklog(ctx context.Context, cfg cluster.Config, n int) (float64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var bytes int
	err := benchkit.Produce(ctx, []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(string(cfg.Names.Pictures)),
		kgo.ProducerLinger(5 * time.Millisecond), kgo.MaxBufferedRecords(100_000)}, n, func(i int) *kgo.Record {
		r := &kgo.Record{Value: []byte(`{"picture_id":"000000243626","weight":-1}`)}
		if i%100 != 99 {
			reg := registration(rng)
			r.Value = codec.Encode(reg)
			if i%2 == 0 {
				r.Key = []byte(reg.PictureID)
			}
		}
		bytes += len(r.Value)
		return r
	})
	return float64(bytes) / float64(n), err
}

// registration is a random valid registration: 100 pictures, 20 to 4999 g.
func registration(rng *rand.Rand) codec.Registration {
	return codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(100)), Weight: 20 + rng.Int64N(4980)}
}

// drain runs a processor with a fresh group over the backlog and returns
// records/s of its input stage from the first record fetched to the last one
// handled (as the bare consumer is measured), and records/s from starting
// the processor to the moment a View of the table shows the exact result
// for every record.
func drain(ctx context.Context, cfg cluster.Config, names cluster.Names, o *options) (float64, float64, error) {
	c := cfg
	c.Names = names
	if err := cluster.EnsureTopics(ctx, c); err != nil {
		return 0, 0, err
	}
	complete, stopView, err := awaitComplete(ctx, c, o.batch)
	if err != nil {
		return 0, 0, err
	}
	defer stopView()
	var handled int64
	var first, lastHandled time.Time // only the input stage's goroutine writes them, before Run returns
	hook := func(n int, polled time.Time) {
		if handled == 0 {
			first = polled
		}
		handled += int64(n)
		lastHandled = time.Now()
	}
	p, err := processor.New(names, stats.All(), c.Logger, processor.WithBatchSize(o.batch), processor.WithInputHook(hook))
	if err != nil {
		return 0, 0, err
	}
	if stop := o.profileDrain(); stop != nil {
		defer stop()
	}
	start := time.Now()
	done, err := runUntil(ctx, c, p, complete)
	if err != nil {
		return 0, 0, err
	}
	if handled != int64(o.records) {
		return 0, 0, fmt.Errorf("the processor handled %d records, want %d", handled, o.records)
	}
	n := float64(o.records)
	return n / lastHandled.Sub(first).Seconds(), n / done.Sub(start).Seconds(), nil
}

// profileDrain starts the CPU profile of the first drain, if asked for,
// and returns its stop.
func (o *options) profileDrain() func() {
	if o.drainProfile == "" {
		return nil
	}
	f, err := os.Create(o.drainProfile)
	o.drainProfile = ""
	if err != nil || pprof.StartCPUProfile(f) != nil {
		fmt.Fprintln(os.Stderr, "bench: no drain profile:", err)
		return nil
	}
	return pprof.StopCPUProfile
}

// runUntil runs p until complete yields the moment the View was complete,
// then stops p and returns that moment.
func runUntil(ctx context.Context, c cluster.Config, p *processor.Processor, complete <-chan time.Time) (time.Time, error) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	ran := make(chan struct{})
	go func() { defer close(ran); runErr = p.Run(pctx, c) }()
	select {
	case at := <-complete:
		cancel()
		<-ran // the hook's writes happen before Run returns
		return at, nil
	case <-ran:
		return time.Time{}, fmt.Errorf("processor stopped: %v", runErr)
	case <-time.After(10 * time.Minute):
		cancel()
		<-ran
		return time.Time{}, errors.New("the processor did not drain the backlog in 10 minutes")
	}
}

// awaitComplete starts a View of c's table and sends, once, the moment it
// first covers every record of the input topic as it is now.
func awaitComplete(ctx context.Context, c cluster.Config, batch int64) (<-chan time.Time, func(), error) {
	ends, err := benchkit.EndOffsets(ctx, c.Brokers, string(c.Names.Pictures))
	if err != nil {
		return nil, nil, err
	}
	complete := make(chan time.Time, 1)
	var once sync.Once
	stop, err := startView(ctx, c, batch, func(now time.Time, covered map[int32]int64) {
		for p, end := range ends {
			if c, ok := covered[p]; !ok || c < end-1 {
				return
			}
		}
		once.Do(func() { complete <- now })
	})
	return complete, stop, err
}
