// Command bench measures picstats' engine in this process, on one broker:
//
//   - drain: records/s of the processor draining a backlog of N records,
//     against the bare consumer (benchkit.ReadAll, the same as
//     bench/peers' bare contender) over the same topic, and their ratio;
//   - latency: produce-to-table latency percentiles at a fixed rate, taken
//     from a goka View like the one the API serves from.
//
// Usage: go run ./bench [--brokers host:port] [--records N] [--runs R] [--rate r] [--duration d] [--drainprofile f]
//
// --runs 0 measures latency only. Without --brokers it starts the embedded
// broker in this process. bench/peers compares picstats as a process with
// its peers; this command measures the processor's own input stage.
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
)

type options struct {
	brokers      string
	records      int
	runs         int
	partitions   int
	rate         float64
	duration     time.Duration
	batch        int64
	drainProfile string // the first processor drain's CPU profile; "" once written
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
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(&o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o *options) error {
	var brokers []string
	where := "embedded kfake broker (in this process)"
	if o.brokers == "" {
		e, err := cluster.StartEmbedded()
		if err != nil {
			return err
		}
		defer e.Close()
		brokers = e.Brokers()
	} else {
		var err error
		if brokers, err = cluster.ParseBrokers(o.brokers); err != nil {
			return err
		}
		where = "Kafka at " + o.brokers
	}
	fmt.Printf("picstats engine benchmark: %s, %d cores, %s, batch size %d\n\n", where, runtime.NumCPU(), runtime.Version(), o.batch)
	cfg := cluster.Config{Brokers: brokers, Names: cluster.DefaultNames(fmt.Sprintf("bench-%d.", rand.IntN(1e6))),
		Partitions: o.partitions, Replication: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	if err := cluster.EnsureTopics(ctx, cfg); err != nil {
		return err
	}
	if o.runs > 0 {
		if err := drains(ctx, cfg, o); err != nil {
			return err
		}
	}
	return latency(ctx, cfg, o)
}
