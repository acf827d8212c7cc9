// Command bench measures picstats' engine in this process, on one broker:
// drain, the records/s of a processor's input stage over a backlog of N
// records against those of the bare consumer (benchkit.ReadAll, as in
// bench/peers) over the same topic, and their ratio; then latency, from the
// produce call to the moment a goka View of the table (as the API serves
// from) includes the record. bench/peers compares picstats as a process
// with its peers; this measures the processor's own input stage.
//
// Usage: go run ./bench [--brokers host:port] [--records N] [--runs R] [--rate r] [--duration d] [--drainprofile f]
//
// Without --brokers it starts the embedded broker in this process; --runs 0
// measures latency only.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

type options struct {
	brokers, drainProfile     string // drainProfile: the first processor drain's CPU profile; "" once written
	records, runs, partitions int
	rate                      float64
	duration                  time.Duration
	batch                     int64
}

func main() {
	var o options
	flag.StringVar(&o.brokers, "brokers", os.Getenv("KAFKA_BROKER"), "Kafka host:port list (default: an embedded broker)")
	flag.IntVar(&o.records, "records", 5_000_000, "records in the backlog to drain (a 1M backlog drains in under a second: too short to measure on a shared machine)")
	flag.IntVar(&o.runs, "runs", 3, "drain runs; the median is reported (0: latency only)")
	flag.IntVar(&o.partitions, "partitions", 4, "partitions of the picture topic")
	flag.Float64Var(&o.rate, "rate", 200, "records/s for the latency run")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of the latency run")
	flag.Int64Var(&o.batch, "batch-size", processor.DefaultBatchSize, "the processor's batch size")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&o.drainProfile, "drainprofile", "", "write a CPU profile of the first processor drain to this file")
	flag.Parse()
	if *cpuProfile != "" {
		if stop := startProfile(cpuProfile); stop != nil {
			defer stop()
		}
	}
	if err := run(context.Background(), &o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// startProfile starts a CPU profile into *file, if it names one, and
// returns its stop; *file is cleared, so that a profile is written once.
func startProfile(file *string) func() {
	if *file == "" {
		return nil
	}
	f, err := os.Create(*file)
	*file = ""
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: no CPU profile:", err)
		return nil
	}
	return pprof.StopCPUProfile
}

func run(ctx context.Context, o *options) error {
	brokers, where := []string(nil), "Kafka at "+o.brokers
	if o.brokers == "" {
		e, err := cluster.StartEmbedded()
		if err != nil {
			return fmt.Errorf("embedded broker: %w", err)
		}
		defer e.Close()
		brokers, where = e.Brokers(), "embedded kfake broker (in this process)"
	} else {
		var err error
		if brokers, err = cluster.ParseBrokers(o.brokers); err != nil {
			return err
		}
	}
	fmt.Printf("picstats engine benchmark: %s, %d cores, %s, batch size %d\n\n", where, runtime.NumCPU(), runtime.Version(), o.batch)
	cfg := cluster.Config{Brokers: brokers, Names: cluster.DefaultNames(fmt.Sprintf("bench-%d.", rand.IntN(1e6))),
		Partitions: o.partitions, Replication: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := cluster.EnsureTopics(ctx, cfg); err != nil {
		return err
	}
	if o.runs > 0 {
		if err := drains(ctx, cfg, o); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	if err := latency(ctx, cfg, o); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	return nil
}

// newProcessor is a processor with every statistic and o's batch size.
func newProcessor(c cluster.Config, o *options, opts ...processor.Option) (*processor.Processor, error) {
	return processor.New(c.Names, stats.All(), c.Logger, append(opts, processor.WithBatchSize(o.batch))...)
}
