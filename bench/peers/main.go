// Command peers compares picstats with what a user would run instead, on an
// Apache Kafka 4.1.1 broker that it starts with scripts/kafka: a bare
// consumer (the limit), goka with a loopback message per record and
// statistic, and Kafka Streams (bench/kstreams). Its phases: drain (each
// contender alone, as its own process, from start to the exact result on
// its output topic), recovery after picstats' drain, live (recovery after
// a datafeed), latency, rest and scaling (picstats alone with 1, 2 and 4
// processor processes over one backlog on 8 partitions). Run it from the
// module root; BENCHMARKS.md explains every figure.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/stats"
)

const (
	partitions = 4
	statsList  = "count,average_weight,min_weight,max_weight" // what every contender computes
	jarPath    = "bench/kstreams/target/picstats-kstreams.jar"
	timeout    = 20 * time.Minute // per contender and run
)

var (
	allContenders = []string{"bare", "picstats", "goka-naive", "kstreams-alos", "kstreams-eos", "kstreams-pre-eos"}
	allPhases     = []string{"drain", "recovery", "live", "latency", "rest", "scaling"}
)

// options are the driver's flags.
type options struct {
	sizes, processors                           []int
	runs, latencyRate, restConns, liveRate      int
	contenders, phases                          []string
	latencyDuration, restDuration, liveDuration time.Duration
	logs                                        string // "": in the scratch folder, removed at the end
}

const usage = `Usage: go run ./bench/peers [flags]   (from the module root)

Starts its own Apache Kafka 4.1.1 (scripts/kafka) and compares picstats with a bare
consumer, goka and Kafka Streams (bench/kstreams, built with Maven on first use). The
defaults take about 75 minutes on 2 cores and the scaling phase some more (about 4
minutes for one backlog of 5M records); BENCHMARKS.md explains every figure.
--phases scaling drains one backlog on 8 partitions with 1, 2 and 4 picstats
processor processes at once (--processors) and reports records/s and CPU seconds
per million records for each number of processes (and for bare, if a contender).

`

func main() {
	fs := flag.NewFlagSet("peers", flag.ExitOnError)
	var o options
	mode := fs.String("mode", "", "internal: run a child (bare, goka-naive or bare-rest) with its arguments")
	records := fs.String("records", "1000000,10000000", "backlog sizes, comma-separated; each gets its own input topic")
	fs.IntVar(&o.runs, "runs", 3, "runs of every contender and measurement; medians are reported")
	contenders := fs.String("contenders", strings.Join(allContenders, ","), "drain contenders, in order (the scaling phase runs bare, if listed, and picstats)")
	phases := fs.String("phases", strings.Join(allPhases, ","), "what to measure: drain, recovery (needs picstats in drain), live, latency, rest, scaling (needs the picstats contender)")
	processors := fs.String("processors", "1,2,4", fmt.Sprintf("scaling: numbers of picstats processor processes that drain the backlog together, comma-separated, each 1 to %d (the partitions); the first is the others' reference", scalingPartitions))
	fs.IntVar(&o.latencyRate, "latency-rate", 1000, "records per second in the latency phase")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 20*time.Second, "how long each latency run produces")
	fs.DurationVar(&o.restDuration, "rest-duration", 10*time.Second, "how long each REST load run lasts")
	fs.IntVar(&o.restConns, "rest-conns", 32, "concurrent keep-alive connections of the REST load generator")
	fs.IntVar(&o.liveRate, "live-rate", 200, "records per second of the datafeed in the live phase")
	fs.DurationVar(&o.liveDuration, "live-duration", time.Minute, "how long the live phase feeds picstats before measuring recovery")
	fs.StringVar(&picstatsWindows, "windows", picstatsWindows, "picstats' --windows (none: no windows; the figures in BENCHMARKS.md before 2026-12-03 had none)")
	fs.StringVar(&picstatsStats, "stats", picstatsStats, "picstats' --stats in the drain, recovery and scaling phases (all: every statistic); must include "+statsList+", which the other contenders compute")
	fs.StringVar(&o.logs, "logs", "", "keep every child's output (and the broker's log) in this folder; by default they are removed with the scratch folder")
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	_ = fs.Parse(os.Args[1:])
	if *mode != "" {
		if err := runChild(*mode, fs.Args()); err != nil {
			fmt.Fprintf(os.Stderr, "peers --mode %s: %v\n", *mode, err)
			os.Exit(1)
		}
		return
	}
	if err := o.parse(*records, *contenders, *phases, *processors); err != nil {
		fmt.Fprintf(os.Stderr, "peers: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

// runChild runs one of the Go contenders this program starts as a child,
// each in its own process like every contender.
func runChild(mode string, a []string) error {
	switch {
	case mode == "bare" && len(a) == 3: // broker, topic, report file
		return bareChild(a[0], a[1], a[2])
	case mode == "goka-naive" && len(a) == 3: // broker, topic, group
		return naiveChild(a[0], a[1], a[2])
	case mode == "bare-rest" && len(a) == 2: // address, file to serve
		return bareRESTChild(a[0], a[1])
	}
	return fmt.Errorf("unknown mode or wrong arguments %q", a)
}

// parse fills in the lists of o from their flags and checks every flag.
func (o *options) parse(records, contenders, phases, processors string) error {
	var errs []error
	o.sizes = numbers(&errs, "records", records, math.MaxInt)
	o.processors = numbers(&errs, "processors", processors, scalingPartitions)
	o.contenders, o.phases = split(contenders), split(phases)
	known := func(flag string, got, all []string) {
		for _, x := range got {
			if !slices.Contains(all, x) {
				errs = append(errs, fmt.Errorf("--%s: unknown %q; known: %s", flag, x, strings.Join(all, ",")))
			}
		}
	}
	known("contenders", o.contenders, allContenders)
	known("phases", o.phases, allPhases)
	if o.has("recovery") && !(o.has("drain") && slices.Contains(o.contenders, "picstats")) {
		errs = append(errs, errors.New("--phases recovery measures the state picstats' drain leaves: add drain and the picstats contender"))
	}
	if o.has("scaling") && !slices.Contains(o.contenders, "picstats") {
		errs = append(errs, errors.New("--phases scaling runs picstats processors: add the picstats contender"))
	}
	if o.has("scaling") && len(o.processors) == 0 {
		errs = append(errs, errors.New("--processors: want at least one number of processes for the scaling phase"))
	}
	if chosen, err := stats.Select(picstatsStats); err != nil {
		errs = append(errs, fmt.Errorf("--stats: %w", err))
	} else if missing := slices.DeleteFunc(split(statsList), func(n string) bool {
		return slices.Contains(stats.Names(chosen), n)
	}); len(missing) > 0 {
		errs = append(errs, fmt.Errorf("--stats %s: lacks %s, whose results the drain's judge compares", picstatsStats, strings.Join(missing, ",")))
	}
	if min(o.runs, o.latencyRate, o.restConns, o.liveRate) < 1 {
		errs = append(errs, errors.New("--runs, --latency-rate, --rest-conns and --live-rate: want at least 1"))
	}
	return errors.Join(errs...)
}

// numbers parses the comma-separated list of flag, each from 1 to most,
// adding an error per bad entry to errs.
func numbers(errs *[]error, flag, list string, most int) []int {
	var ns []int
	for _, s := range split(list) {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil || n < 1:
			*errs = append(*errs, fmt.Errorf("--%s: %q is not a positive number", flag, s))
		case n > most:
			*errs = append(*errs, fmt.Errorf("--%s: %d is more than %d", flag, n, most))
		}
		ns = append(ns, n)
	}
	return ns
}

func split(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func (o options) has(phase string) bool { return slices.Contains(o.phases, phase) }

// env is what every measurement needs: the broker and the built programs.
type env struct {
	broker         string
	adm            *kadm.Client
	tmp, logs      string // scratch folder; the children's logs
	logSeq         int
	picstats, self string // the built picstats; this program, for the Go children
	o              options
}

// log returns a new log file name for a child, numbered so that a kept
// folder reads in order.
func (e *env) log(name string) string {
	e.logSeq++
	return filepath.Join(e.logs, fmt.Sprintf("%03d-%s.log", e.logSeq, name))
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "picstats-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{tmp: tmp, logs: cmp.Or(o.logs, filepath.Join(tmp, "logs")), o: o}
	if err := os.MkdirAll(e.logs, 0o755); err != nil {
		return err
	}
	if err := e.build(ctx); err != nil {
		return err
	}
	stopKafka, err := e.startKafka(ctx)
	defer stopKafka()
	if err != nil {
		return err
	}
	java, _ := exec.Command("java", "-version").CombinedOutput()
	fmt.Printf("\nmachine: %s\n", benchkit.Machine())
	fmt.Printf("versions: Apache Kafka 4.1.1 (scripts/kafka, one KRaft node on this machine); kafka-streams 4.1.1; goka v1.1.14; %s\n",
		cmp.Or(strings.SplitN(string(java), "\n", 2)[0], "java: ?"))
	fmt.Printf("command: go run ./bench/peers %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("backlogs: %v records on %d partitions (scaling: %d); runs: %d; phases: %s\n\n", o.sizes, partitions, scalingPartitions, o.runs, strings.Join(o.phases, ","))
	for _, p := range []struct {
		name string
		f    func(context.Context, int) error
	}{{"drain", e.drain}, {"scaling", e.scaling}} {
		for _, n := range o.sizes {
			if !o.has(p.name) {
				break
			}
			if err := p.f(ctx, n); err != nil {
				return fmt.Errorf("%s %d: %w", p.name, n, err)
			}
		}
	}
	for _, p := range []struct {
		name string
		f    func(context.Context) error
	}{{"live", e.live}, {"latency", e.latency}, {"rest", e.rest}} {
		if o.has(p.name) {
			if err := p.f(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	return nil
}

// build builds picstats and, if a phase needs it and it is missing, the
// Kafka Streams jar, which produces the drain and scaling backlogs and is
// the Kafka Streams contender.
func (e *env) build(ctx context.Context) (err error) {
	if e.picstats, err = benchkit.BuildPicstats(ctx, e.tmp); err != nil {
		return err
	}
	kstreams := slices.ContainsFunc(e.o.contenders, func(c string) bool { return strings.HasPrefix(c, "kstreams") })
	if _, err := os.Stat(jarPath); err != nil && (e.o.has("drain") || e.o.has("scaling") || e.o.has("latency") && kstreams) {
		fmt.Println("building the Kafka Streams peer (mvn, once)…")
		if err := benchkit.Run(ctx, "mvn", "-q", "-f", "bench/kstreams/pom.xml", "package", "-DskipTests"); err != nil {
			return fmt.Errorf("mvn: %w", err)
		}
	}
	e.self, err = os.Executable()
	return err
}

// printTable prints rows in right-aligned columns, but for the last cell of
// each row (a result and its note), which follows as it is.
func printTable(rows [][]string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r[:len(r)-1], "\t")+"\t  "+r[len(r)-1])
	}
	_ = w.Flush()
	fmt.Println()
}

// f formats x with prec decimals, "-" for NaN or 0 (not measured).
func f(x float64, prec int) string {
	if math.IsNaN(x) || x == 0 {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}
