// Command peers compares picstats with a bare franz-go consumer and with a
// Kafka Streams peer (bench/kstreams) on one Kafka 4.1.1 broker: the time for
// each contender, run alone as its own child process, to drain the same
// backlog to the exact final result, with the CPU seconds and peak RSS of
// that process.
//
// Usage: go run ./bench/peers [--records 1000000] [--runs 3] [--contenders bare,picstats,kstreams-alos,kstreams-eos]
//
// It starts its own broker with scripts/kafka on free ports in a temporary
// folder, builds the picstats binary, produces the backlog once with the
// kstreams jar's --produce (which also prints the expected result), then
// runs every contender in turn, runs times, and prints a table per run and
// the medians.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/codec"
)

const (
	prefix     = "bench."
	topic      = prefix + "picture"
	partitions = 4
	statsList  = "count,average_weight,min_weight,max_weight"
	jarPath    = "bench/kstreams/target/picstats-kstreams.jar"
	timeout    = 15 * time.Minute // per contender and run
)

func main() {
	mode := flag.String("mode", "", "internal: bare runs the bare consumer child")
	brokers := flag.String("brokers", "", "internal: broker for --mode bare")
	records := flag.Int("records", 1_000_000, "records in the backlog")
	runs := flag.Int("runs", 3, "runs of every contender; medians are reported")
	contenders := flag.String("contenders", "bare,picstats,kstreams-alos,kstreams-eos", "contenders, in order")
	flag.Parse()
	if *mode == "bare" {
		if err := bareChild(*brokers); err != nil {
			fmt.Fprintln(os.Stderr, "bare:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *records, *runs, strings.Split(*contenders, ","))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "peers:", err)
		os.Exit(1)
	}
}

// expected is the exact final result, from the jar's --produce output.
type expected struct {
	lines                  string // key<TAB>json lines, for --await
	count, total, min, max int64
}

type result struct {
	name                string
	seconds, cpu, rssMB float64
	ready               float64 // seconds from start to first record / RUNNING; NaN if unknown
	ok                  bool
	note                string
	rate, ratio         float64
}

func run(ctx context.Context, records, runs int, contenders []string) error {
	for _, c := range contenders {
		switch c {
		case "bare", "picstats", "kstreams-alos", "kstreams-eos":
		default:
			return fmt.Errorf("unknown contender %q", c)
		}
	}
	if _, err := os.Stat("scripts/kafka"); err != nil {
		return errors.New("run from the module root (/work/main)")
	}
	tmp, err := os.MkdirTemp("", "picstats-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The jar and the picstats binary.
	if _, err := os.Stat(jarPath); err != nil {
		fmt.Println("building the kstreams jar…")
		if err := runCmd(ctx, "mvn", "-q", "-f", "bench/kstreams/pom.xml", "package", "-DskipTests"); err != nil {
			return fmt.Errorf("mvn: %w", err)
		}
	}
	picstats := filepath.Join(tmp, "picstats")
	if err := runCmd(ctx, "go", "build", "-o", picstats, "."); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	// The broker.
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	kdir := filepath.Join(tmp, "kafka")
	broker := fmt.Sprintf("127.0.0.1:%d", ports[0])
	fmt.Printf("starting Kafka 4.1.1 at %s (folder %s)…\n", broker, kdir)
	defer func() {
		// a fresh context: ctx may be cancelled (Ctrl-C)
		_ = runCmd(context.Background(), "scripts/kafka", "stop", "--dir", kdir)
	}()
	if err := runCmd(ctx, "scripts/kafka", "start", "--dir", kdir, "--port", strconv.Itoa(ports[0]),
		"--external-port", strconv.Itoa(ports[1]), "--controller-port", strconv.Itoa(ports[2])); err != nil {
		return fmt.Errorf("kafka start: %w", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// The backlog, once.
	fmt.Printf("producing %d records into %s (%d partitions, seed 1) with the kstreams jar…\n", records, topic, partitions)
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "java", "-jar", jarPath, "--produce", strconv.Itoa(records), "--seed", "1",
		"--bootstrap", broker, "--input", topic, "--partitions", strconv.Itoa(partitions)).Output()
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	exp, err := parseExpected(string(out))
	if err != nil {
		return err
	}
	if exp.count != int64(records) {
		return fmt.Errorf("expected count %d, want %d", exp.count, records)
	}
	expFile := filepath.Join(tmp, "expected.tsv")
	if err := os.WriteFile(expFile, []byte(exp.lines), 0o644); err != nil {
		return err
	}
	fmt.Printf("produced in %v; expected result:\n%s\n", time.Since(t0).Round(time.Millisecond), exp.lines)

	// The first group on a fresh broker creates __consumer_offsets (50
	// partitions, seconds): do it now, not in the first contender's time.
	if err := warmGroups(ctx, adm); err != nil {
		return fmt.Errorf("creating __consumer_offsets: %w", err)
	}

	header(records, runs, contenders)

	var all [][]result
	for i := range runs {
		var rs []result
		for _, c := range contenders {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var r result
			switch c {
			case "bare":
				r = runBare(ctx, self, broker, exp)
			case "picstats":
				r = runPicstats(ctx, adm, picstats, broker, exp)
			case "kstreams-alos":
				r = runKStreams(ctx, adm, broker, expFile, tmp, "at_least_once", i)
			case "kstreams-eos":
				r = runKStreams(ctx, adm, broker, expFile, tmp, "exactly_once_v2", i)
			}
			r.name = c
			if r.seconds > 0 {
				r.rate = float64(records) / r.seconds
			}
			fmt.Printf("  run %d %-14s %6.2fs ok=%v %s\n", i+1, c, r.seconds, r.ok, r.note)
			rs = append(rs, r)
		}
		var bareRate float64
		for _, r := range rs {
			if r.name == "bare" && r.ok {
				bareRate = r.rate
			}
		}
		for j := range rs {
			rs[j].ratio = math.NaN()
			if bareRate > 0 && rs[j].ok {
				rs[j].ratio = rs[j].rate / bareRate
			}
		}
		fmt.Printf("\nrun %d of %d:\n", i+1, runs)
		table(rs)
		fmt.Println()
		all = append(all, rs)
	}
	if avgValueBytes > 0 {
		fmt.Printf("average record value: %.1f bytes of JSON (measured by the bare consumer)\n", avgValueBytes)
	}
	fmt.Printf("\nsummary: medians over %d runs, %d records\n", runs, records)
	var sum []result
	for j, c := range contenders {
		m := result{name: c, ok: true}
		var rate, secs, cpu, rss, ratio, ready []float64
		for _, rs := range all {
			r := rs[j]
			if !r.ok {
				m.ok = false
				continue
			}
			rate, secs, cpu, rss = append(rate, r.rate), append(secs, r.seconds), append(cpu, r.cpu), append(rss, r.rssMB)
			ratio, ready = append(ratio, r.ratio), append(ready, r.ready)
		}
		m.rate, m.seconds, m.cpu, m.rssMB, m.ratio, m.ready = median(rate), median(secs), median(cpu), median(rss), median(ratio), median(ready)
		if !m.ok {
			m.note = fmt.Sprintf("%d of %d runs FAILED; medians over the others", runs-len(rate), runs)
		}
		sum = append(sum, m)
	}
	table(sum)
	return nil
}

func header(records, runs int, contenders []string) {
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
	fmt.Printf("versions: %s; Kafka 4.1.1 (scripts/kafka, one node KRaft); kafka-streams 4.1.1; java: %s\n", gv, jv)
	fmt.Printf("records: %d on %d partitions of %s; runs: %d; contenders: %s\n", records, partitions, topic, runs, strings.Join(contenders, ","))
	fmt.Printf("command: go run ./bench/peers %s\n", strings.Join(os.Args[1:], " "))
	fmt.Println("every contender is a separate child process, run alone; time = process start → exact final result")
	fmt.Println("(start-up included: JVM, group joins); CPU = utime+stime of that process; RSS = its ru_maxrss")
	fmt.Println("bare: franz-go consumer (no group) decoding every record with codec.Decode, parallel per partition;")
	fmt.Println("picstats: `picstats processor` (done = `picstats api` GET /api/stats exact, api not measured);")
	fmt.Println("kstreams-*: bench/kstreams jar, dsl topology, commit 100 ms, 2 threads (done = --await exits 0, not measured)")
	fmt.Println("ready: start → first record read (bare) or RUNNING printed (kstreams)")
	fmt.Println()
}

func table(rs []result) {
	fmt.Printf("%-14s %12s %9s %8s %9s %8s %8s  %s\n", "contender", "records/s", "seconds", "CPU s", "RSS MB", "vs bare", "ready s", "result")
	for _, r := range rs {
		res := "ok"
		if !r.ok {
			res = "FAILED"
		}
		if r.note != "" {
			res += " (" + r.note + ")"
		}
		fmt.Printf("%-14s %12s %9s %8s %9s %8s %8s  %s\n", r.name, f(r.rate, 0), f(r.seconds, 2), f(r.cpu, 2), f(r.rssMB, 0), f(r.ratio, 2), f(r.ready, 2), res)
	}
}

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

func parseExpected(out string) (expected, error) {
	e := expected{}
	var lines []string
	vals := map[string]map[string]json.Number{}
	for _, l := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "\t")
		if !ok {
			continue
		}
		lines = append(lines, k+"\t"+v)
		m := map[string]json.Number{}
		d := json.NewDecoder(strings.NewReader(v))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return e, fmt.Errorf("expected line %q: %w", l, err)
		}
		vals[k] = m
	}
	get := func(k, f string) (int64, error) {
		n, ok := vals[k][f]
		if !ok {
			return 0, fmt.Errorf("no %s.%s in the expected output", k, f)
		}
		return n.Int64()
	}
	var errs [4]error
	e.count, errs[0] = get("count", "registrations")
	e.total, errs[1] = get("average_weight", "total_weight_grams")
	e.min, errs[2] = get("min_weight", "min_weight_grams")
	e.max, errs[3] = get("max_weight", "max_weight_grams")
	e.lines = strings.Join(lines, "\n") + "\n"
	return e, errors.Join(errs[:]...)
}

// ---- child processes ----

type child struct {
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{} // closed when the process has exited
	err   error
}

func startChild(ctx context.Context, stdout io.Writer, logFile string, name string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Stdout = stdout
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		cmd.Stderr = f
		if stdout == nil {
			cmd.Stdout = f
		}
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

// cpuNow is the utime+stime of the running process, from /proc/PID/stat.
func (c *child) cpuNow() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(fs[11], 64) // field 14
	st, _ := strconv.ParseFloat(fs[12], 64)
	return (u + st) / 100 // USER_HZ is 100 on Linux
}

// stop sends SIGTERM, waits for the exit (SIGKILL after 30 s) and returns
// the CPU seconds and peak RSS in MB over the whole life of the process.
func (c *child) stop() (cpu, rssMB float64) {
	select {
	case <-c.done:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return math.NaN(), math.NaN()
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	return cpu, float64(ru.Maxrss) / 1024
}

// ---- bare ----

type bareReport struct {
	Records, Valid, Sum, Min, Max, Bytes int64
	FirstRecordSeconds                   float64
}

func runBare(ctx context.Context, self, broker string, exp expected) result {
	var out bytes.Buffer
	r := result{ready: math.NaN()}
	c, err := startChild(ctx, &out, "", self, "--mode", "bare", "--brokers", broker)
	if err != nil {
		r.note = err.Error()
		return r
	}
	select {
	case <-c.done:
	case <-time.After(timeout):
		r.note = "timeout"
	}
	r.seconds = time.Since(c.start).Seconds()
	r.cpu, r.rssMB = c.stop()
	if c.err != nil {
		r.note = fmt.Sprintf("exit: %v", c.err)
		return r
	}
	var rep bareReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		r.note = fmt.Sprintf("report %q: %v", out.String(), err)
		return r
	}
	r.ready = rep.FirstRecordSeconds
	if rep.Valid != exp.count || rep.Sum != exp.total || rep.Min != exp.min || rep.Max != exp.max {
		r.note = fmt.Sprintf("got count %d sum %d min %d max %d", rep.Valid, rep.Sum, rep.Min, rep.Max)
		return r
	}
	if rep.Records > 0 {
		avgValueBytes = float64(rep.Bytes) / float64(rep.Records)
	}
	r.ok = true
	return r
}

var avgValueBytes float64

// bareChild reads every record of the topic from the start to the end
// offsets it lists first, decoding the partitions of each fetch in parallel,
// and prints a JSON report on stdout.
func bareChild(broker string) error {
	start := time.Now()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return err
	}
	offs := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			offs[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	cl, err = kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		return err
	}
	defer cl.Close()
	rep := bareReport{Min: math.MaxInt64, Max: math.MinInt64}
	var mu sync.Mutex
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			return err
		}
		if rep.FirstRecordSeconds == 0 {
			rep.FirstRecordSeconds = time.Since(start).Seconds()
		}
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var n, valid, sum, size int64
				mn, mx := int64(math.MaxInt64), int64(math.MinInt64)
				for _, r := range p.Records {
					n++
					size += int64(len(r.Value))
					reg, err := codec.Decode(r.Value)
					if err != nil {
						continue
					}
					valid++
					sum += reg.Weight
					mn, mx = min(mn, reg.Weight), max(mx, reg.Weight)
				}
				last := p.Records[len(p.Records)-1].Offset
				mu.Lock()
				rep.Records += n
				rep.Valid += valid
				rep.Sum += sum
				rep.Bytes += size
				rep.Min, rep.Max = min(rep.Min, mn), max(rep.Max, mx)
				if last+1 >= left[p.Partition] {
					delete(left, p.Partition)
				}
				mu.Unlock()
			}()
		})
		wg.Wait()
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// ---- picstats ----

func runPicstats(ctx context.Context, adm *kadm.Client, bin, broker string, exp expected) result {
	r := result{ready: math.NaN()}
	if err := resetPicstats(ctx, adm); err != nil {
		r.note = "reset: " + err.Error()
		return r
	}
	ports, err := freePorts(1)
	if err != nil {
		r.note = err.Error()
		return r
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	logDir := os.TempDir()
	common := []string{"--brokers", broker, "--topic-prefix", prefix, "--partitions", strconv.Itoa(partitions), "--stats", statsList, "--log-level", "warn"}
	p, err := startChild(ctx, nil, filepath.Join(logDir, "picstats-peers-processor.log"), bin, append([]string{"processor"}, common...)...)
	if err != nil {
		r.note = err.Error()
		return r
	}
	a, err := startChild(ctx, nil, filepath.Join(logDir, "picstats-peers-api.log"), bin, append([]string{"api", "--addr", addr}, common...)...)
	if err != nil {
		p.stop()
		r.note = err.Error()
		return r
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.After(timeout)
	last := ""
poll:
	for {
		select {
		case <-p.done:
			r.note = fmt.Sprintf("processor exited: %v", p.err)
			break poll
		case <-a.done:
			r.note = fmt.Sprintf("api exited: %v", a.err)
			break poll
		case <-deadline:
			r.note = "timeout; last answer " + last
			break poll
		case <-ctx.Done():
			r.note = "interrupted"
			break poll
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := hc.Get("http://" + addr + "/api/stats")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		last = string(body)
		if ok, _ := picstatsExact(body, exp); ok {
			r.seconds = time.Since(p.start).Seconds()
			r.cpu = p.cpuNow()
			r.ok = true
			break
		}
	}
	_, rss := p.stop()
	a.stop()
	r.rssMB = rss
	if !r.ok {
		r.seconds = 0
	}
	return r
}

func picstatsExact(body []byte, exp expected) (bool, error) {
	var v struct {
		Count struct {
			Registrations int64 `json:"registrations"`
		} `json:"count"`
		Avg struct {
			Total         int64 `json:"total_weight_grams"`
			Registrations int64 `json:"registrations"`
		} `json:"average_weight"`
		Min struct {
			Min *int64 `json:"min_weight_grams"`
		} `json:"min_weight"`
		Max struct {
			Max *int64 `json:"max_weight_grams"`
		} `json:"max_weight"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return false, err
	}
	return v.Count.Registrations == exp.count && v.Avg.Total == exp.total && v.Avg.Registrations == exp.count &&
		v.Min.Min != nil && *v.Min.Min == exp.min && v.Max.Max != nil && *v.Max.Max == exp.max, nil
}

// resetPicstats deletes picstats' groups and topics (all but the input) and
// waits until they are gone.
func resetPicstats(ctx context.Context, adm *kadm.Client) error {
	groups := []string{prefix + "picstats", prefix + "picstats-input"}
	topics := []string{prefix + "picstats-table", prefix + "picstats-snapshots", prefix + "stats", prefix + "picture.rejected"}
	return deleteAll(ctx, adm, groups, topics)
}

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

// ---- kstreams ----

func runKStreams(ctx context.Context, adm *kadm.Client, broker, expFile, tmp, guarantee string, run int) result {
	r := result{ready: math.NaN()}
	short := map[string]string{"at_least_once": "alos", "exactly_once_v2": "eos"}[guarantee]
	id := fmt.Sprintf("bench-kstreams-%s-%d-%d", short, run+1, time.Now().Unix())
	output := id + "-out"
	logDir := os.TempDir()
	pr, pw := io.Pipe()
	app, err := startChild(ctx, pw, filepath.Join(logDir, "picstats-peers-"+short+".log"), "java", "-jar", jarPath,
		"--bootstrap", broker, "--input", topic, "--output", output, "--application-id", id, "--guarantee", guarantee,
		"--state-dir", filepath.Join(tmp, "kstreams-state"))
	if err != nil {
		r.note = err.Error()
		return r
	}
	go func() { <-app.done; pw.Close() }()
	running := make(chan time.Time, 1)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			if strings.TrimSpace(s.Text()) == "RUNNING" {
				select {
				case running <- time.Now():
				default:
				}
			}
		}
	}()
	aw, err := startChild(ctx, nil, filepath.Join(logDir, "picstats-peers-await-"+short+".log"), "java", "-jar", jarPath,
		"--await", expFile, "--bootstrap", broker, "--output", output, "--timeout-ms", strconv.Itoa(int(timeout.Milliseconds())))
	if err != nil {
		app.stop()
		r.note = err.Error()
		return r
	}
	select {
	case <-aw.done:
		if aw.err == nil {
			r.seconds = time.Since(app.start).Seconds()
			r.cpu = app.cpuNow()
			r.ok = true
		} else {
			r.note = fmt.Sprintf("await: %v", aw.err)
		}
	case <-app.done:
		r.note = fmt.Sprintf("app exited: %v", app.err)
	case <-ctx.Done():
		r.note = "interrupted"
	}
	select {
	case t := <-running:
		r.ready = t.Sub(app.start).Seconds()
	default:
	}
	_, rss := app.stop()
	aw.stop()
	r.rssMB = rss
	if !r.ok {
		r.seconds = 0
	}
	// Clean up: its group and its topics (internal ones share the id as prefix).
	if td, err := adm.ListTopics(ctx); err == nil {
		var ts []string
		for _, t := range td.Names() {
			if strings.HasPrefix(t, id) {
				ts = append(ts, t)
			}
		}
		_ = deleteAll(ctx, adm, []string{id}, ts)
	}
	_ = os.RemoveAll(filepath.Join(tmp, "kstreams-state", id))
	return r
}

// ---- helpers ----

// warmGroups commits an offset for a throwaway group, which makes the broker
// create __consumer_offsets, then deletes the group.
func warmGroups(ctx context.Context, adm *kadm.Client) error {
	const g = prefix + "warmup"
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: topic, Partition: 0, At: 0, LeaderEpoch: -1})
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
	return deleteAll(ctx, adm, []string{g}, nil)
}

func runCmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
