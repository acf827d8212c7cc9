// Command bench measures picstats' engine in this process, on one broker:
// drain, the records/s of a processor's input stage over a backlog of N
// records against those of the bare consumer (benchkit.ReadAll, as in
// bench/peers) over the same topic, and their ratio; then latency, from the
// produce call to the moment a goka View of the table (as the API serves
// from) includes the record. bench/peers compares picstats as a process
// with its peers; this measures the processor's own input stage.
//
// Usage: go run ./bench [--brokers host:port] [--records N] [--pictures K] [--runs R] [--windows spec[;spec…]] [--rate r] [--duration d] [--snapshot-interval d] [--drainprofile f]
//
// Without --brokers it starts the embedded broker in this process; --runs 0
// measures latency only. --windows gives the processor's event-time windows
// as picstats' flag does (default: picstats' default; none: no windows);
// with several specs, separated by semicolons, each run drains the backlog
// with the bare consumer once and then with a processor per spec, so that
// the ratios of a spec pair come from the same run; latency is measured per
// spec.
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
	"strings"
	"time"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

type options struct {
	brokers, drainProfile     string       // drainProfile: the first processor drain's CPU profile; "" once written
	configs                   []config     // --windows
	windows                   []stats.Kind // the windowed statistics of the processors being measured
	records, runs, partitions int
	pictures                  int
	rate                      float64
	duration                  time.Duration
	batch                     int64
	interval                  time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.brokers, "brokers", os.Getenv("KAFKA_BROKER"), "Kafka host:port list (default: an embedded broker)")
	flag.IntVar(&o.records, "records", 5_000_000, "records in the backlog to drain (a 1M backlog drains in under a second: too short to measure on a shared machine)")
	flag.IntVar(&o.runs, "runs", 3, "drain runs; the median is reported (0: latency only)")
	flag.IntVar(&o.partitions, "partitions", 4, "partitions of the picture topic")
	flag.IntVar(&o.pictures, "pictures", 100, "distinct picture ids (bench/peers' backlog has 5000)")
	flag.Float64Var(&o.rate, "rate", 200, "records/s for the latency run")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of the latency run")
	flag.Int64Var(&o.batch, "batch-size", processor.DefaultBatchSize, "the processor's batch size")
	flag.DurationVar(&o.interval, "snapshot-interval", processor.DefaultSnapshotInterval, "the processor's snapshot interval")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&o.drainProfile, "drainprofile", "", "write a CPU profile of the first processor drain to this file")
	windows := flag.String("windows", stats.DefaultWindowsSpec, "the processor's event-time windows, as picstats' --windows (size=retention,...; none: none);\nseveral specs separated by ; are each measured in every run, against the same bare consumer")
	flag.Parse()
	var err error
	if o.configs, err = parseConfigs(*windows); err != nil {
		fmt.Fprintln(os.Stderr, "bench: --windows:", err)
		os.Exit(2)
	}
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
	fmt.Printf("picstats engine benchmark: %s, %d cores, %s, batch size %d\n", where, runtime.NumCPU(), runtime.Version(), o.batch)
	for _, c := range o.configs {
		fmt.Printf("--windows %s: %d statistics, %d of them windowed\n", c.spec, len(stats.All())+len(c.windows), len(c.windows))
	}
	fmt.Println()
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
	for i, w := range o.configs {
		c := cfg // fresh topics per spec: latency's are named after the prefix
		c.Names.Prefix = fmt.Sprintf("%sw%d.", cfg.Names.Prefix, i)
		o.windows = w.windows
		fmt.Printf("--windows %s, ", w.spec)
		if err := latency(ctx, c, o); err != nil {
			return fmt.Errorf("latency, --windows %s: %w", w.spec, err)
		}
	}
	return nil
}

// config is one --windows spec and the windowed statistics it gives.
type config struct {
	spec    string
	windows []stats.Kind
}

// parseConfigs reads --windows: specs separated by semicolons.
func parseConfigs(list string) ([]config, error) {
	var cs []config
	for spec := range strings.SplitSeq(list, ";") {
		spec = strings.TrimSpace(spec)
		ws, err := stats.ParseWindows(spec)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", spec, err)
		}
		cs = append(cs, config{spec: spec, windows: stats.WindowedKinds(stats.All(), ws)})
	}
	return cs, nil
}

// newProcessor is a processor with every statistic, o.windows (snapshotted
// at picstats' default interval), o's batch size and snapshot interval.
func newProcessor(c cluster.Config, o *options, opts ...processor.Option) (*processor.Processor, error) {
	opts = append(opts, processor.WithBatchSize(o.batch), processor.WithSnapshotInterval(o.interval),
		processor.WithWindows(o.windows, max(o.interval, processor.DefaultWindowInterval)))
	return processor.New(c.Names, stats.All(), c.Logger, opts...)
}
