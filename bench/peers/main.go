// Command peers compares picstats with the alternatives a user would
// consider, on one Apache Kafka 4.1.1 broker started for the purpose:
//
//   - drain: the time for each contender, run alone as its own process, to
//     turn a backlog of N registrations into the exact final result on its
//     output topic, with that process's CPU seconds and peak RSS. The
//     contenders: a bare franz-go consumer that only reads and decodes (the
//     limit), the picstats processor, goka with one loopback message per
//     record and statistic (the naive design), and Kafka Streams
//     (bench/kstreams) at-least-once and exactly_once_v2, and pre-aggregating
//     per partition with exactly_once_v2;
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
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
	sizes              []int
	runs               int
	contenders, phases []string
	latencyRate        int
	latencyDuration    time.Duration
	restDuration       time.Duration
	restConns          int
	liveRate           int
	liveDuration       time.Duration
	logs               string // the children's logs go here; "" = the scratch folder, removed at the end
}

func main() {
	fs := flag.NewFlagSet("peers", flag.ExitOnError)
	mode := fs.String("mode", "", "internal: run a child (bare, goka-naive or bare-rest)")
	records := fs.String("records", "1000000,10000000", "backlog sizes, comma-separated; each gets its own input topic")
	runs := fs.Int("runs", 3, "runs of every contender and measurement; medians are reported")
	contenders := fs.String("contenders", strings.Join(allContenders, ","), "drain contenders, in order")
	phases := fs.String("phases", strings.Join(allPhases, ","), "what to measure: drain, recovery (needs picstats in drain), live, latency, rest")
	latRate := fs.Int("latency-rate", 1000, "records per second in the latency phase")
	latDur := fs.Duration("latency-duration", 20*time.Second, "how long each latency run produces")
	restDur := fs.Duration("rest-duration", 10*time.Second, "how long each REST load run lasts")
	restConns := fs.Int("rest-conns", 32, "concurrent keep-alive connections of the REST load generator")
	liveRate := fs.Int("live-rate", 200, "records per second of the datafeed in the live phase")
	liveDur := fs.Duration("live-duration", time.Minute, "how long the live phase feeds picstats before measuring recovery")
	logs := fs.String("logs", "", "keep every child's output (and the broker's log) in this folder; by default they are removed with the scratch folder")
	childArgs := childFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: go run ./bench/peers [flags]   (from the module root)

Starts its own Apache Kafka 4.1.1 (scripts/kafka) and compares picstats with
a bare consumer, goka with per-record loopback and Kafka Streams (bench/kstreams,
built with Maven on first use): drain time to an exact result, recovery, live
recovery, latency and REST throughput. The defaults take about 75 minutes on
2 cores. BENCHMARKS.md explains every figure. Flags marked internal are for
the children this program runs.

`)
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if *mode != "" {
		if err := runChild(*mode, childArgs); err != nil {
			fmt.Fprintf(os.Stderr, "peers --mode %s: %v\n", *mode, err)
			os.Exit(1)
		}
		return
	}
	o := options{runs: *runs, contenders: split(*contenders), phases: split(*phases),
		latencyRate: *latRate, latencyDuration: *latDur, restDuration: *restDur, restConns: *restConns, logs: *logs, liveRate: *liveRate, liveDuration: *liveDur}
	var errs []error
	for _, s := range split(*records) {
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
	if err := errors.Join(errs...); err != nil {
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
	if _, err := os.Stat("scripts/kafka"); err != nil {
		return errors.New("run from the module root: scripts/kafka not found")
	}
	tmp, err := os.MkdirTemp("", "picstats-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	e := &env{tmp: tmp, logs: o.logs, o: o}
	if e.logs == "" {
		e.logs = filepath.Join(tmp, "logs")
	}
	if err := os.MkdirAll(e.logs, 0o755); err != nil {
		return err
	}

	// The jar produces the drain backlogs and is the Kafka Streams contender.
	kstreams := slices.ContainsFunc(o.contenders, func(c string) bool { return strings.HasPrefix(c, "kstreams") })
	if _, err := os.Stat(jarPath); err != nil && (o.has("drain") || o.has("latency") && kstreams) {
		fmt.Println("building the Kafka Streams peer (mvn, once)…")
		if err := runCmd(ctx, "mvn", "-q", "-f", "bench/kstreams/pom.xml", "package", "-DskipTests"); err != nil {
			return fmt.Errorf("mvn: %w", err)
		}
	}
	e.picstats = filepath.Join(tmp, "picstats")
	if err := runCmd(ctx, "go", "build", "-o", e.picstats, "."); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	if e.self, err = os.Executable(); err != nil {
		return err
	}

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	kdir := filepath.Join(tmp, "kafka")
	e.broker = fmt.Sprintf("127.0.0.1:%d", ports[0])
	fmt.Printf("starting Kafka 4.1.1 at %s…\n", e.broker)
	defer func() {
		// a fresh context: ctx may be cancelled (Ctrl-C)
		_ = runCmd(context.Background(), "scripts/kafka", "stop", "--dir", kdir)
		if o.logs != "" {
			_ = os.Rename(filepath.Join(kdir, "broker.log"), filepath.Join(o.logs, "kafka-broker.log"))
		}
	}()
	if err := runCmd(ctx, "scripts/kafka", "start", "--dir", kdir, "--port", strconv.Itoa(ports[0]),
		"--external-port", strconv.Itoa(ports[1]), "--controller-port", strconv.Itoa(ports[2])); err != nil {
		return fmt.Errorf("kafka start: %w", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker))
	if err != nil {
		return err
	}
	defer cl.Close()
	e.adm = kadm.NewClient(cl)
	// The first group on a fresh broker creates __consumer_offsets (50
	// partitions, seconds): do it now, not in the first contender's time.
	if err := warmGroups(ctx, e.adm); err != nil {
		return fmt.Errorf("creating __consumer_offsets: %w", err)
	}
	header(o)

	if o.has("drain") {
		for _, n := range o.sizes {
			b, err := e.produce(ctx, n)
			if err != nil {
				return err
			}
			if err := e.drain(ctx, b); err != nil {
				return err
			}
		}
	}
	if o.has("live") {
		if err := e.live(ctx); err != nil {
			return fmt.Errorf("live: %w", err)
		}
	}
	if o.has("latency") {
		if err := e.latency(ctx); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if o.has("rest") {
		if err := e.rest(ctx); err != nil {
			return fmt.Errorf("rest: %w", err)
		}
	}
	return nil
}

func header(o options) {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	jv := "?"
	if b, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		jv = strings.SplitN(string(b), "\n", 2)[0]
	}
	gv := runtime.Version()
	if b, err := exec.Command("go", "version").Output(); err == nil {
		gv = strings.TrimSpace(string(b))
	}
	fmt.Printf("\nmachine: %d cores (%s), MemTotal %s, load average at start %s\n", runtime.NumCPU(), model, mem, load)
	fmt.Printf("versions: %s; Apache Kafka 4.1.1 (scripts/kafka, one KRaft node on this machine); kafka-streams 4.1.1; goka v1.1.14; %s\n", gv, jv)
	fmt.Printf("command: go run ./bench/peers %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("backlogs: %v records on %d partitions; runs: %d; phases: %s\n\n", o.sizes, partitions, o.runs, strings.Join(o.phases, ","))
}

// ---- tables and medians ----

func f(x float64, prec int) string {
	if math.IsNaN(x) || x == 0 {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

func median(xs []float64) float64 {
	var s []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// ---- broker housekeeping ----

// warmGroups commits an offset for a throwaway group, which makes the broker
// create __consumer_offsets, then deletes the group.
func warmGroups(ctx context.Context, adm *kadm.Client) error {
	const g, t = "bench.warmup", "bench.warmup"
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, t); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: t, Partition: 0, At: 0, LeaderEpoch: -1})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := adm.CommitAllOffsets(ctx, g, o)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return deleteAll(ctx, adm, []string{g}, []string{t})
}

// deleteAll deletes the groups and topics that exist and waits until they
// are gone.
func deleteAll(ctx context.Context, adm *kadm.Client, groups, topics []string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var pending []string
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		var gs []string
		for _, g := range groups {
			if _, ok := listed[g]; ok {
				gs = append(gs, g)
			}
		}
		if len(gs) > 0 {
			res, _ := adm.DeleteGroups(ctx, gs...)
			for g, r := range res {
				if r.Err != nil {
					pending = append(pending, "group "+g+": "+r.Err.Error())
				}
			}
		}
		td, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		var ts []string
		for _, t := range topics {
			if td.Has(t) {
				ts = append(ts, t)
			}
		}
		if len(ts) > 0 {
			_, _ = adm.DeleteTopics(ctx, ts...)
			pending = append(pending, "topics "+strings.Join(ts, ","))
		}
		if len(pending) == 0 && len(gs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still there: %s", strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// deletePrefixed deletes every topic whose name starts with prefix, and the
// groups given.
func deletePrefixed(ctx context.Context, adm *kadm.Client, prefix string, groups ...string) error {
	td, err := adm.ListTopics(ctx)
	if err != nil {
		return err
	}
	var ts []string
	for _, t := range td.Names() {
		if strings.HasPrefix(t, prefix) {
			ts = append(ts, t)
		}
	}
	return deleteAll(ctx, adm, groups, ts)
}
