// Command rebalance measures how long picstats' statistics stand still
// when processors join and leave (issue 19). Run it from the module root.
//
// It starts its own Apache Kafka 4.1.1 with scripts/kafka on free ports
// (or uses --brokers), builds picstats and, for each run, under a topic
// prefix of its own, starts `picstats --brokers B --rate R` (datafeed,
// processor and API in one process) and polls GET /api/stats/count every
// --poll. Then, in order, each event of --events:
//
//   - steady: nothing happens.
//   - join: a second processor (`picstats processor`) starts.
//   - leave: that processor gets SIGTERM.
//   - kill: a processor starts, gets --settle to join, and is SIGKILLed.
//   - restart: a processor starts, gets --settle to join, is SIGKILLed and
//     started again at once with the same arguments (the same
//     --instance-id with --static).
//
// For each event it reports the longest time the count did not grow in the
// --window after it (--kill-window after a SIGKILL), the time from a new
// processor's start to its "processor ready" log line, and how many
// "input partitions assigned" lines the processors logged in the window
// (every member logs one per rebalance of the input group; a static
// member's rejoin without a rebalance, only the restarted one). Every run
// is reported, with the machine's load average.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
)

var allEvents = []string{"steady", "join", "leave", "kill", "restart"}

// options are the command's flags.
type options struct {
	brokers                    string
	runs                       int
	rate                       float64
	poll, window, kill, settle time.Duration
	events                     []string
	static                     bool
	args                       []string // more flags for every process that runs a processor
	logs                       string
}

const usage = `Usage: go run ./bench/rebalance [flags]   (from the module root)

Measures how long /api/stats/count stops growing when processors join, leave
gracefully (SIGTERM), are SIGKILLed, and are restarted right after a SIGKILL,
on Apache Kafka 4.1.1 that it starts with scripts/kafka (or --brokers), with
the pipeline "picstats --rate R" plus "picstats processor" processes.
BENCHMARKS.md ("Rebalances") explains the figures.

`

// parseOptions parses and checks the flags.
func parseOptions(args []string, out io.Writer) (options, error) {
	fs := flag.NewFlagSet("rebalance", flag.ContinueOnError)
	fs.SetOutput(out)
	var o options
	events := fs.String("events", strings.Join(allEvents, ","), "events to measure, in this order: "+strings.Join(allEvents, ",")+" (leave needs join)")
	extra := fs.String("args", "", "more flags for every picstats process that runs a processor, space-separated (e.g. \"--log-level debug\")")
	fs.StringVar(&o.brokers, "brokers", "", "use this Kafka (host:port,...) instead of starting one; topics get a prefix of their own")
	fs.IntVar(&o.runs, "runs", 1, "runs, each with a fresh pipeline and topics; every run is reported")
	fs.Float64Var(&o.rate, "rate", 200, "registrations per second of the datafeed")
	fs.DurationVar(&o.poll, "poll", 20*time.Millisecond, "how often the count is read")
	fs.DurationVar(&o.window, "window", 20*time.Second, "how long after steady, join and leave the count is watched")
	fs.DurationVar(&o.kill, "kill-window", 30*time.Second, "how long after a SIGKILL the count is watched (make it longer than the session timeout)")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "how long a processor that is to be killed runs first")
	fs.BoolVar(&o.static, "static", false, "give every processor --instance-id (static membership; the restarted one keeps its id)")
	fs.StringVar(&o.logs, "logs", "", "keep every process's output (and the broker's log) in this folder")
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if o.brokers != "" {
		if _, err := cluster.ParseBrokers(o.brokers); err != nil {
			errs = append(errs, fmt.Errorf("--brokers: %w", err))
		}
	}
	if o.runs < 1 {
		errs = append(errs, fmt.Errorf("--runs %d: want at least 1", o.runs))
	}
	if !(o.rate > 0) || math.IsInf(o.rate, 0) {
		errs = append(errs, fmt.Errorf("--rate %v: want more than 0", o.rate))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"poll", o.poll}, {"window", o.window}, {"kill-window", o.kill}, {"settle", o.settle}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("--%s %v: want more than 0", d.name, d.v))
		}
	}
	if o.poll > 0 && o.window > 0 && o.poll >= o.window {
		errs = append(errs, fmt.Errorf("--poll %v: want less than --window %v", o.poll, o.window))
	}
	for _, e := range strings.Split(*events, ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if !slices.Contains(allEvents, e) {
			errs = append(errs, fmt.Errorf("--events: unknown event %q (want some of %s)", e, strings.Join(allEvents, ",")))
		} else if !slices.Contains(o.events, e) {
			o.events = append(o.events, e)
		}
	}
	if len(o.events) == 0 {
		errs = append(errs, errors.New("--events: no event given"))
	}
	if slices.Contains(o.events, "leave") && !slices.Contains(o.events, "join") {
		errs = append(errs, errors.New("--events: leave needs join (it stops the processor that joined)"))
	}
	// Keep the given order of the known events (leave after join).
	slices.SortStableFunc(o.events, func(a, b string) int { return slices.Index(allEvents, a) - slices.Index(allEvents, b) })
	o.args = strings.Fields(*extra)
	return o, errors.Join(errs...)
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rebalance: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rebalance:", err)
		os.Exit(1)
	}
}

// result is one event's figures.
type result struct {
	run      int
	event    string
	stall    time.Duration
	ready    float64 // seconds from a new processor's start to "processor ready"; NaN: none
	assigned int     // "input partitions assigned" lines logged in the window
	load     string
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "picstats-rebalance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logs := o.logs
	if logs == "" {
		logs = filepath.Join(tmp, "logs")
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	bin, err := benchkit.BuildPicstats(ctx, tmp)
	if err != nil {
		return err
	}
	brokers, kafka := o.brokers, "given"
	var adm *kadm.Client
	if brokers == "" {
		k, err := benchkit.StartKafka(ctx, filepath.Join(tmp, "kafka"))
		defer k.Stop(o.logs)
		if err != nil {
			return err
		}
		brokers, adm, kafka = k.Broker, k.Adm, "Apache Kafka 4.1.1 (scripts/kafka)"
	} else {
		seeds, _ := cluster.ParseBrokers(brokers)
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return err
		}
		defer cl.Close()
		adm = kadm.NewClient(cl)
	}
	fmt.Printf("%s; broker %s; %g records/s; processor flags %q; static membership %v\n", benchkit.Machine(), kafka, o.rate, o.args, o.static)
	var results []result
	for r := 1; r <= o.runs && ctx.Err() == nil; r++ {
		rs, err := (&runner{o: o, bin: bin, brokers: brokers, adm: adm, logs: logs, run: r,
			prefix: fmt.Sprintf("rebalance%d-%d-", time.Now().Unix(), r)}).do(ctx)
		results = append(results, rs...)
		if err != nil {
			print(results)
			return fmt.Errorf("run %d: %w (logs in %s)", r, err, logs)
		}
	}
	print(results)
	if o.logs != "" {
		fmt.Println("logs:", o.logs)
	}
	return ctx.Err()
}

func print(results []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tevent\tlongest stall s\tready s\tinput assignments\tload (1/5/15 min)\t")
	for _, r := range results {
		ready := "-"
		if !math.IsNaN(r.ready) {
			ready = fmt.Sprintf("%.2f", r.ready)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%s\t%d\t%s\t\n", r.run, r.event, r.stall.Seconds(), ready, r.assigned, r.load)
	}
	tw.Flush()
}

// runner runs the events of one run on a pipeline of its own.
type runner struct {
	o       options
	bin     string
	brokers string
	adm     *kadm.Client
	logs    string
	run     int
	prefix  string
	names   cluster.Names
	base    string // the API's URL

	mu      sync.Mutex
	samples []sample
	procs   []*benchkit.Child
	n       int // processes started, for log names and instance ids
}

type sample struct {
	at    time.Time
	count int64 // -1: no answer
}

func (rn *runner) do(ctx context.Context) ([]result, error) {
	defer func() {
		for _, c := range rn.procs {
			c.Stop()
		}
		if rn.o.brokers != "" { // a given cluster: leave nothing behind
			td, _ := rn.adm.ListTopics(context.Background())
			var ts []string
			for _, t := range td.Names() {
				if strings.HasPrefix(t, rn.prefix) {
					ts = append(ts, t)
				}
			}
			_, _ = rn.adm.DeleteTopics(context.Background(), ts...)
			_, _ = rn.adm.DeleteGroups(context.Background(), rn.names.InputGroup(), string(rn.names.Group))
		}
	}()
	rn.names = cluster.DefaultNames(rn.prefix)
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	rn.base = "http://" + addr
	all, ready, err := rn.start(ctx, "all", "--rate", fmt.Sprint(rn.o.rate), "--addr", addr)
	if err != nil {
		return nil, err
	}
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go rn.pollCount(pollCtx)
	if note := all.WaitReady(ctx, "picstats", func() bool { return !math.IsNaN(ready.Since(all.Start)) && rn.grew(time.Now().Add(-time.Second)) }); note != "" {
		return nil, errors.New(note)
	}
	fmt.Printf("run %d: pipeline ready after %.1f s; settling %v\n", rn.run, time.Since(all.Start).Seconds(), rn.o.settle)
	if err := sleep(ctx, rn.o.settle); err != nil {
		return nil, err
	}
	var out []result
	var joined *benchkit.Child
	for _, ev := range rn.o.events {
		var res result
		var err error
		switch ev {
		case "steady":
			res, err = rn.measure(ctx, ev, rn.o.window, func() (*benchkit.Marker, time.Time, error) { return nil, time.Now(), nil })
		case "join":
			res, err = rn.measure(ctx, ev, rn.o.window, func() (*benchkit.Marker, time.Time, error) {
				c, m, err := rn.start(ctx, "processor")
				joined = c
				if err != nil {
					return nil, time.Time{}, err
				}
				return m, c.Start, nil
			})
		case "leave":
			res, err = rn.measure(ctx, ev, rn.o.window, func() (*benchkit.Marker, time.Time, error) {
				at := time.Now()
				return nil, at, joined.Cmd.Process.Signal(syscall.SIGTERM)
			})
		case "kill", "restart":
			var victim *benchkit.Child
			var args []string
			if victim, _, err = rn.start(ctx, "processor"); err != nil {
				break
			}
			args = victim.Cmd.Args[1:]
			fmt.Printf("run %d: %s: a processor joins; settling %v\n", rn.run, ev, rn.o.settle)
			if err = sleep(ctx, rn.o.settle); err != nil {
				break
			}
			res, err = rn.measure(ctx, ev, rn.o.kill, func() (*benchkit.Marker, time.Time, error) {
				at := time.Now()
				if err := victim.Cmd.Process.Kill(); err != nil {
					return nil, at, err
				}
				if ev == "kill" {
					return nil, at, nil
				}
				<-victim.Done
				_, m, err := rn.startArgs(ctx, "processor", args)
				return m, at, err
			})
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", ev, err)
		}
		out = append(out, res)
		fmt.Printf("run %d: %-8s longest stall %.2f s\n", rn.run, ev, res.stall.Seconds())
	}
	return out, nil
}

// measure runs event (which returns the marker of a processor it started,
// if any, and the moment it happened) and watches the count for window.
func (rn *runner) measure(ctx context.Context, name string, window time.Duration, event func() (*benchkit.Marker, time.Time, error)) (result, error) {
	res := result{run: rn.run, event: name, load: benchkit.LoadAvg()}
	before := rn.assignments()
	m, at, err := event()
	if err != nil {
		return res, err
	}
	var started time.Time
	if n := len(rn.procs); m != nil && n > 0 {
		started = rn.procs[n-1].Start
	}
	if err := sleep(ctx, time.Until(at.Add(window))); err != nil {
		return res, err
	}
	res.assigned = rn.assignments() - before
	res.stall = rn.stall(at, at.Add(window))
	res.ready = m.Since(started)
	return res, nil
}

// start starts picstats with role ("all" or "processor") and the run's
// flags; it returns a marker of the "processor ready" line.
func (rn *runner) start(ctx context.Context, role string, args ...string) (*benchkit.Child, *benchkit.Marker, error) {
	a := []string{"--brokers", rn.brokers, "--topic-prefix", rn.prefix}
	if role != "all" {
		a = append([]string{role}, a...)
	}
	a = append(append(a, args...), rn.o.args...)
	if rn.o.static {
		a = append(a, "--instance-id", fmt.Sprintf("p%d", rn.n+1))
	}
	return rn.startArgs(ctx, role, a)
}

func (rn *runner) startArgs(ctx context.Context, role string, args []string) (*benchkit.Child, *benchkit.Marker, error) {
	rn.n++
	m := benchkit.NewMarker("processor ready")
	c, err := benchkit.Start(ctx, filepath.Join(rn.logs, fmt.Sprintf("run%d-%d-%s.log", rn.run, rn.n, role)), m, rn.bin, args...)
	if err != nil {
		return nil, nil, err
	}
	rn.procs = append(rn.procs, c)
	return c, m, nil
}

// assignments counts the "input partitions assigned" lines the run's
// processes have logged: each member logs one per rebalance of the input
// group it takes part in.
func (rn *runner) assignments() int {
	n := 0
	for _, c := range rn.procs {
		b, _ := os.ReadFile(c.Log)
		n += strings.Count(string(b), "input partitions assigned")
	}
	return n
}

func (rn *runner) pollCount(ctx context.Context) {
	hc := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(rn.o.poll)
	defer t.Stop()
	for {
		n, err := benchkit.GetCount(ctx, hc, rn.base)
		if err != nil {
			n = -1
		}
		rn.mu.Lock()
		rn.samples = append(rn.samples, sample{time.Now(), n})
		rn.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// grew reports whether the count grew after since.
func (rn *runner) grew(since time.Time) bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return growths(rn.samples, since, time.Now()) > 0
}

func growths(samples []sample, from, to time.Time) int {
	n, prev := 0, int64(-1)
	for _, s := range samples {
		if !s.at.After(to) && s.count > prev && prev >= 0 && s.at.After(from) {
			n++
		}
		prev = max(prev, s.count)
	}
	return n
}

// stall is the longest time in [from, to] in which the count did not grow.
func (rn *runner) stall(from, to time.Time) time.Duration {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return longestStall(rn.samples, from, to)
}

func longestStall(samples []sample, from, to time.Time) time.Duration {
	var longest time.Duration
	last, high := from, int64(-1)
	for _, s := range samples {
		if s.at.After(to) {
			break
		}
		grew := s.count > high && high >= 0
		high = max(high, s.count)
		if !grew || !s.at.After(from) {
			continue
		}
		longest, last = max(longest, s.at.Sub(last)), s.at
	}
	return max(longest, to.Sub(last))
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
