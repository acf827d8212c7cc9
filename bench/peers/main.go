// Command peers compares picstats with the alternatives a user would
// consider, on one Apache Kafka 4.1.1 broker started for the purpose:
//
//   - drain: the time for each contender, run alone as its own process, to
//     turn a backlog of N registrations into the exact final result on its
//     output topic, with that process's CPU seconds and peak RSS. The
//     contenders: the bare consumer that only reads and decodes (the
//     limit; benchkit.ReadAll, as in `go run ./bench`), the picstats
//     processor, goka with one loopback message per record and statistic
//     (the naive design), and Kafka Streams (bench/kstreams) at-least-once
//     and exactly_once_v2, and pre-aggregating per partition with
//     exactly_once_v2;
//   - recovery: after picstats drained N records, the time from starting a
//     processor, and an API replica, until it has recovered the table;
//   - live: the same after picstats ran with a datafeed at a steady rate;
//   - latency: produce-to-output latency at a steady rate for picstats and
//     Kafka Streams;
//   - rest: GET /api/stats requests per second from `picstats api` against
//     a bare net/http handler that serves the same bytes.
//
// Usage (from the module root):
//
//	go run ./bench/peers [--records 1000000,10000000] [--runs 3] [--phases drain,recovery,live,latency,rest]
//
// See BENCHMARKS.md for what each figure means and the results.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

const (
	partitions = 4
	statsList  = "count,average_weight,min_weight,max_weight" // what every contender computes
	jarPath    = "bench/kstreams/target/picstats-kstreams.jar"
	timeout    = 20 * time.Minute // per contender and run
)

var allContenders = []string{"bare", "picstats", "goka-naive", "kstreams-alos", "kstreams-eos", "kstreams-pre-eos"}
var allPhases = []string{"drain", "recovery", "live", "latency", "rest"}

// options are the driver's flags.
type options struct {
	sizes                                       []int
	runs                                        int
	contenders, phases                          []string
	latencyRate, restConns, liveRate            int
	latencyDuration, restDuration, liveDuration time.Duration
	logs                                        string // the children's logs go here; "" = the scratch folder, removed at the end
}

const usage = `Usage: go run ./bench/peers [flags]   (from the module root)

Starts its own Apache Kafka 4.1.1 (scripts/kafka) and compares picstats with a bare
consumer, goka and Kafka Streams (bench/kstreams, built with Maven on first use). The
defaults take about 75 minutes on 2 cores; BENCHMARKS.md explains every figure. Flags
marked internal are for the children this program runs.

`

func main() {
	fs := flag.NewFlagSet("peers", flag.ExitOnError)
	var o options
	mode := fs.String("mode", "", "internal: run a child (bare, goka-naive or bare-rest)")
	records := fs.String("records", "1000000,10000000", "backlog sizes, comma-separated; each gets its own input topic")
	fs.IntVar(&o.runs, "runs", 3, "runs of every contender and measurement; medians are reported")
	contenders := fs.String("contenders", strings.Join(allContenders, ","), "drain contenders, in order")
	phases := fs.String("phases", strings.Join(allPhases, ","), "what to measure: drain, recovery (needs picstats in drain), live, latency, rest")
	fs.IntVar(&o.latencyRate, "latency-rate", 1000, "records per second in the latency phase")
	fs.DurationVar(&o.latencyDuration, "latency-duration", 20*time.Second, "how long each latency run produces")
	fs.DurationVar(&o.restDuration, "rest-duration", 10*time.Second, "how long each REST load run lasts")
	fs.IntVar(&o.restConns, "rest-conns", 32, "concurrent keep-alive connections of the REST load generator")
	fs.IntVar(&o.liveRate, "live-rate", 200, "records per second of the datafeed in the live phase")
	fs.DurationVar(&o.liveDuration, "live-duration", time.Minute, "how long the live phase feeds picstats before measuring recovery")
	fs.StringVar(&o.logs, "logs", "", "keep every child's output (and the broker's log) in this folder; by default they are removed with the scratch folder")
	childArgs := childFlags(fs)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	_ = fs.Parse(os.Args[1:])
	if *mode != "" {
		if err := runChild(*mode, childArgs); err != nil {
			fmt.Fprintf(os.Stderr, "peers --mode %s: %v\n", *mode, err)
			os.Exit(1)
		}
		return
	}
	o.contenders, o.phases = split(*contenders), split(*phases)
	if err := o.check(*records); err != nil {
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

// check parses --records into o.sizes and checks every flag.
func (o *options) check(records string) error {
	var errs []error
	for _, s := range split(records) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("--records: %q is not a positive number", s))
		}
		o.sizes = append(o.sizes, n)
	}
	for _, c := range o.contenders {
		if !slices.Contains(allContenders, c) {
			errs = append(errs, fmt.Errorf("--contenders: unknown %q; known: %s", c, strings.Join(allContenders, ",")))
		}
	}
	for _, p := range o.phases {
		if !slices.Contains(allPhases, p) {
			errs = append(errs, fmt.Errorf("--phases: unknown %q; known: %s", p, strings.Join(allPhases, ",")))
		}
	}
	if o.has("recovery") && !(o.has("drain") && slices.Contains(o.contenders, "picstats")) {
		errs = append(errs, errors.New("--phases recovery measures the state picstats' drain leaves: add drain and the picstats contender"))
	}
	if o.runs < 1 || o.latencyRate < 1 || o.restConns < 1 || o.liveRate < 1 {
		errs = append(errs, errors.New("--runs, --latency-rate, --rest-conns and --live-rate: want at least 1"))
	}
	return errors.Join(errs...)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (o options) has(phase string) bool { return slices.Contains(o.phases, phase) }

// env is what every measurement needs: the broker and the built programs.
type env struct {
	broker   string
	adm      *kadm.Client
	tmp      string // scratch folder
	logs     string // the children's logs
	logSeq   int
	picstats string // the built picstats binary
	self     string // this program, for the Go children
	o        options
}

// log returns a new log file name for a child; numbered, so that a kept
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
	fmt.Printf("\nmachine: %s\n", benchkit.Machine())
	fmt.Printf("versions: Apache Kafka 4.1.1 (scripts/kafka, one KRaft node on this machine); kafka-streams 4.1.1; goka v1.1.14; %s\n", javaVersion())
	fmt.Printf("command: go run ./bench/peers %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("backlogs: %v records on %d partitions; runs: %d; phases: %s\n\n", o.sizes, partitions, o.runs, strings.Join(o.phases, ","))
	return e.phases(ctx)
}

// phases runs the phases asked for, in their fixed order.
func (e *env) phases(ctx context.Context) error {
	if e.o.has("drain") {
		for _, n := range e.o.sizes {
			b, err := e.produce(ctx, n)
			if err != nil {
				return err
			}
			if err := e.drain(ctx, b); err != nil {
				return err
			}
		}
	}
	for _, p := range []struct {
		name string
		f    func(context.Context) error
	}{{"live", e.live}, {"latency", e.latency}, {"rest", e.rest}} {
		if e.o.has(p.name) {
			if err := p.f(ctx); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	return nil
}

// build builds picstats and, if a phase needs it and it is missing, the
// Kafka Streams jar, which produces the drain backlogs and is the Kafka
// Streams contender.
func (e *env) build(ctx context.Context) error {
	kstreams := slices.ContainsFunc(e.o.contenders, func(c string) bool { return strings.HasPrefix(c, "kstreams") })
	var err error
	if e.picstats, err = benchkit.BuildPicstats(ctx, e.tmp); err != nil {
		return err
	}
	if _, err := os.Stat(jarPath); err != nil && (e.o.has("drain") || e.o.has("latency") && kstreams) {
		fmt.Println("building the Kafka Streams peer (mvn, once)…")
		if err := benchkit.Run(ctx, "mvn", "-q", "-f", "bench/kstreams/pom.xml", "package", "-DskipTests"); err != nil {
			return fmt.Errorf("mvn: %w", err)
		}
	}
	e.self, err = os.Executable()
	return err
}

func javaVersion() string {
	b, err := exec.Command("java", "-version").CombinedOutput()
	if err != nil {
		return "java: ?"
	}
	return strings.SplitN(string(b), "\n", 2)[0]
}
