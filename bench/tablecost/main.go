// Command tablecost measures what the group table costs while picstats runs
// at a steady rate, with and without event-time windows: the traffic of the
// table's changelog (records/s and bytes/s of key + value as the producer
// hands them over, before compression), the table's size (the latest value
// of each key: bytes and keys) and the picstats process's CPU and memory.
//
// Usage: go run ./bench/tablecost [--binary path] [--windows-list none,default] [--rate 200] [--backfill N] [--warmup 30s] [--duration 10m] [--top N]
//
// For each configuration of --windows-list (a --windows spec of picstats;
// "default" is its default, stats.DefaultWindowsSpec) it starts
// `picstats all` — datafeed, processor and API on an embedded broker of its
// own — waits for "processor ready", produces the --backfill registrations
// (timestamps spread evenly over the longest retention of the spec, so that
// every window kept holds records, as after weeks of running) and waits the
// warm-up, then lists the end
// offsets of the changelog at the start of the measured window, every
// minute, and at its end. Only then does it read the changelog from the
// start to the end offsets (so that the reading does not share the machine
// with the measured window), counts the records between the window's
// offsets and keeps the latest value of each key. The embedded broker keeps
// every record in memory (it compacts hourly), so the RSS includes every
// topic's log. Run it from the module root.
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

type options struct {
	binary, windows string
	rate            float64
	backfill        int
	warmup, dur     time.Duration
	top             int
}

// result is one configuration's measurement.
type result struct {
	spec                    string
	secs                    float64 // length of the measured window
	records, bytes, biggest int64   // in the window; biggest: the largest key+value
	biggestKey              string
	perMinute               []float64 // changelog bytes/s in each minute of the window
	keys                    map[string]*keyCost
	tableBytes              int64 // latest key+value of each key at the end of the window
	cpuCores, rssMB, hwmMB  float64
}

// keyCost is one key's share; a windowed statistic's (name@size) latest
// value also says how many windows it holds (wins) of how many it keeps at
// full retention (full).
type keyCost struct {
	records, bytes, latest int64
	value                  []byte // the latest value of a windowed statistic
	wins, full             int
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "picstats binary to run (default: go build it from the module root)")
	flag.StringVar(&o.windows, "windows-list", "none,default", "--windows specs to measure, separated by ; (or by , between specs without =); default is picstats' default ("+stats.DefaultWindowsSpec+")")
	flag.Float64Var(&o.rate, "rate", 200, "registrations per second of picstats' datafeed")
	flag.IntVar(&o.backfill, "backfill", 0, "registrations produced before the warm-up with timestamps spread over the longest window retention (0: none; 100000 fills every default window)")
	flag.DurationVar(&o.warmup, "warmup", 30*time.Second, "time between the processor being ready and the measured window")
	flag.DurationVar(&o.dur, "duration", 10*time.Minute, "length of the measured window")
	flag.IntVar(&o.top, "top", 0, "keys listed per configuration, by changelog bytes/s (0: all)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go run ./bench/tablecost [flags]   (from the module root)\n\n"+
			"Measures the group table's changelog traffic and size while picstats runs, per --windows spec.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "tablecost:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	tmp, err := os.MkdirTemp("", "picstats-tablecost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.binary == "" {
		if o.binary, err = benchkit.BuildPicstats(ctx, tmp); err != nil {
			return err
		}
	}
	images, err := filepath.Abs("images") // the datafeed registers these pictures; an empty --images is refused
	if err != nil {
		return err
	}
	fmt.Printf("machine: %s\ncommand: go run ./bench/tablecost %s\n", benchkit.Machine(), strings.Join(os.Args[1:], " "))
	fmt.Printf("picstats all at %g registrations/s, warm-up %v, measured %v; changelog topic %s\n\n",
		o.rate, o.warmup, o.dur, cluster.DefaultNames("").Table())
	var rs []*result
	for _, spec := range specs(o.windows) {
		r, err := measure(ctx, o, spec, images, filepath.Join(tmp, fmt.Sprintf("picstats-%d.log", len(rs))))
		if err != nil {
			return fmt.Errorf("--windows %s: %w", spec, err)
		}
		rs = append(rs, r)
		printKeys(r, o.top)
	}
	fmt.Println("| --windows | keys | changelog records/s | changelog bytes/s | mean record | biggest record | table size | picstats CPU | RSS (peak) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Printf("| %s | %d | %.0f | %s/s | %s | %s (%s) | %s | %.2f cores | %.0f MB (%.0f MB) |\n", r.spec, len(r.keys),
			float64(r.records)/r.secs, size(float64(r.bytes)/r.secs), size(float64(r.bytes)/float64(r.records)),
			size(float64(r.biggest)), r.biggestKey, size(float64(r.tableBytes)), r.cpuCores, r.rssMB, r.hwmMB)
	}
	fmt.Println("\nbytes: key + value, uncompressed; table size: the latest record of each key at the window's end; CPU, RSS and its peak:")
	fmt.Println("the picstats process (datafeed, processor, API and the embedded broker, which holds every topic in memory) over the window.")
	return nil
}

// specs splits --windows-list: at semicolons, and at the commas of a part
// with no "=" (so "none,default" is two specs, "none;1m=2h,1h=48h" too).
func specs(list string) []string {
	var out []string
	for part := range strings.SplitSeq(list, ";") {
		items := []string{part}
		if !strings.Contains(part, "=") {
			items = strings.Split(part, ",")
		}
		for _, s := range items {
			if s = strings.TrimSpace(s); s == "default" {
				s = stats.DefaultWindowsSpec
			}
			if s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// measure runs picstats with --windows spec and measures its changelog.
func measure(ctx context.Context, o options, spec, images, logFile string) (*result, error) {
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return nil, err
	}
	broker := "127.0.0.1:" + strconv.Itoa(ports[0])
	ready := benchkit.NewMarker("processor ready")
	c, err := benchkit.Start(ctx, logFile, ready, o.binary, "--rate", fmt.Sprint(o.rate), "--addr", "127.0.0.1:0",
		"--embedded-port", strconv.Itoa(ports[0]), "--images", images, "--windows", spec)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if note := c.WaitReady(ctx, "picstats", func() bool { return !math.IsNaN(ready.Since(c.Start)) }); note != "" {
		return nil, fmt.Errorf("picstats: %s", note)
	}
	fmt.Printf("--windows %s: picstats ready after %.1f s (log %s); warm-up %v, then %v measured\n", spec, ready.Since(c.Start), logFile, o.warmup, o.dur)
	topic := string(cluster.DefaultNames("").Table())
	if o.backfill > 0 {
		if err := backfill(ctx, broker, spec, images, o.backfill); err != nil {
			return nil, err
		}
	}
	if !sleep(ctx, c, o.warmup) {
		return nil, fmt.Errorf("during the warm-up: %s", c.ExitNote("picstats"))
	}
	// checkpoints[i]: end offsets at the window's start, each minute, its end
	var checkpoints []map[int32]int64
	var times []time.Time
	var cpu []benchkit.ProcSample
	for {
		ends, err := benchkit.EndOffsets(ctx, []string{broker}, topic)
		if err != nil {
			return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		s, err := benchkit.ReadProc(c.Pid())
		if err != nil {
			return nil, fmt.Errorf("picstats' /proc: %w", err)
		}
		checkpoints, times, cpu = append(checkpoints, ends), append(times, time.Now()), append(cpu, s)
		left := o.dur - time.Since(times[0])
		if left <= 0 {
			break
		}
		if !sleep(ctx, c, min(time.Minute, left)) {
			return nil, fmt.Errorf("while measuring: %s", c.ExitNote("picstats"))
		}
	}
	r := &result{spec: spec, secs: times[len(times)-1].Sub(times[0]).Seconds(), keys: map[string]*keyCost{}}
	first, last := cpu[0], cpu[len(cpu)-1]
	r.cpuCores, r.rssMB, r.hwmMB = (last.CPU-first.CPU).Seconds()/r.secs, float64(last.RSSKB)/1024, float64(last.HWMKB)/1024
	start := time.Now()
	perInterval, err := read(ctx, broker, topic, checkpoints, r)
	if err != nil {
		return nil, err
	}
	for i, b := range perInterval {
		r.perMinute = append(r.perMinute, float64(b)/times[i+1].Sub(times[i]).Seconds())
	}
	fmt.Printf("  read %d changelog records in %.1f s\n", r.records, time.Since(start).Seconds())
	if err := countWindows(spec, r); err != nil {
		return nil, err
	}
	c.Stop()
	if c.Err != nil {
		fmt.Printf("  picstats did not exit cleanly on SIGTERM: %v\n", c.Err)
	}
	return r, nil
}

// backfill produces n registrations of the pictures in images with
// timestamps spread evenly over the longest retention of spec (35 days if
// it has none), up to now.
func backfill(ctx context.Context, broker, spec, images string, n int) error {
	span := 35 * 24 * time.Hour
	if ws, err := stats.ParseWindows(spec); err == nil && len(ws) > 0 {
		span = 0
		for _, w := range ws {
			span = max(span, w.Retention)
		}
	}
	files, err := filepath.Glob(filepath.Join(images, "*.jpg"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("backfill: no pictures in %s", images)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(string(cluster.DefaultNames("").Pictures)))
	if err != nil {
		return err
	}
	defer cl.Close()
	now := time.Now()
	for i := range n {
		id := strings.TrimSuffix(filepath.Base(files[i%len(files)]), ".jpg")
		at := now.Add(-span + time.Duration(i)*(span/time.Duration(n))) // step first: i*span overflows
		cl.Produce(ctx, &kgo.Record{Value: codec.Encode(codec.Registration{PictureID: id, Weight: int64(20 + i*7919%4980)}), Timestamp: at}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	fmt.Printf("  backfilled %d registrations over the last %v\n", n, span)
	return nil
}

// read reads topic from the start to the last checkpoint's end offsets and
// fills r: the window is from the first checkpoint to the last. It returns
// the key+value bytes between consecutive checkpoints.
func read(ctx context.Context, broker, topic string, cps []map[int32]int64, r *result) ([]int64, error) {
	ends, offs := cps[len(cps)-1], map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			offs[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	perInterval, latest, values := make([]int64, len(cps)-1), map[string]int64{}, map[string][]byte{}
	for len(offs) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, err)
		}
		for it := fetches.RecordIter(); !it.Done(); {
			rec := it.Next()
			if rec.Offset >= ends[rec.Partition] {
				continue
			}
			n, key := int64(len(rec.Key)+len(rec.Value)), string(rec.Key)
			if latest[key] = n; strings.Contains(key, "@") {
				values[key] = bytes.Clone(rec.Value)
			}
			if rec.Offset+1 == ends[rec.Partition] {
				delete(offs, rec.Partition)
			}
			i := slices.IndexFunc(cps, func(cp map[int32]int64) bool { return rec.Offset < cp[rec.Partition] }) // the first checkpoint after it
			if i <= 0 {
				continue // before the window
			}
			perInterval[i-1] += n
			k := r.keys[key]
			if k == nil {
				k = &keyCost{}
				r.keys[key] = k
			}
			k.records, k.bytes, r.records, r.bytes = k.records+1, k.bytes+n, r.records+1, r.bytes+n
			if n > r.biggest {
				r.biggest, r.biggestKey = n, key
			}
		}
	}
	for key, n := range latest {
		r.tableBytes += n
		if r.keys[key] == nil {
			r.keys[key] = &keyCost{}
		}
		r.keys[key].latest, r.keys[key].value = n, values[key]
	}
	return perInterval, nil
}

// countWindows decodes the latest value of each windowed statistic of r and
// notes how many windows it holds, and how many it keeps at full retention.
func countWindows(spec string, r *result) error {
	ws, err := stats.ParseWindows(spec)
	if err != nil {
		return err
	}
	for _, k := range stats.WindowedKinds(stats.All(), ws) {
		c := r.keys[k.Name]
		if c == nil || c.value == nil {
			continue
		}
		var v table.Value
		if err := v.UnmarshalBinary(c.value); err != nil {
			return fmt.Errorf("table value of %s: %w", k.Name, err)
		}
		s, err := v.Stat(k)
		if err != nil {
			return fmt.Errorf("table value of %s: %w", k.Name, err)
		}
		w := s.(*stats.Windows)
		c.wins, c.full = len(w.Starts()), int(w.Window().Retention/w.Window().Size)
	}
	return nil
}

// printKeys prints the top keys of r by changelog bytes/s, and the bytes/s
// of each minute.
func printKeys(r *result, top int) {
	keys := slices.Collect(maps.Keys(r.keys))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(r.keys[b].bytes, r.keys[a].bytes), strings.Compare(a, b))
	})
	fmt.Printf("  changelog bytes/s by minute:")
	for _, b := range r.perMinute {
		fmt.Printf(" %s", size(b))
	}
	fmt.Println()
	var wk keyCost
	var wKeys int
	for _, c := range r.keys {
		if c.full > 0 {
			wKeys, wk.records, wk.bytes, wk.latest = wKeys+1, wk.records+c.records, wk.bytes+c.bytes, wk.latest+c.latest
		}
	}
	if wKeys > 0 {
		fmt.Printf("  windowed keys: %d, %.1f records/s, %s/s (%.1f%% of the changelog's bytes), %s of the table\n",
			wKeys, float64(wk.records)/r.secs, size(float64(wk.bytes)/r.secs), 100*float64(wk.bytes)/float64(r.bytes), size(float64(wk.latest)))
	}
	fmt.Printf("| key | records/s | bytes/s | share | latest value | windows held / at full retention |\n|---|---|---|---|---|---|\n")
	if top <= 0 {
		top = len(keys)
	}
	for _, k := range keys[:min(top, len(keys))] {
		c, wins := r.keys[k], "-"
		if c.full > 0 {
			wins = fmt.Sprintf("%d / %d", c.wins, c.full)
		}
		fmt.Printf("| %s | %.1f | %s/s | %.1f%% | %s | %s |\n", k, float64(c.records)/r.secs, size(float64(c.bytes)/r.secs),
			100*float64(c.bytes)/float64(r.bytes), size(float64(c.latest)), wins)
	}
	fmt.Println()
}

// sleep waits d; false if picstats exited or ctx ended first.
func sleep(ctx context.Context, c *benchkit.Child, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-c.Done:
	case <-ctx.Done():
	}
	return false
}

// size formats a byte count in B, KB or MB (powers of 1000).
func size(b float64) string {
	switch {
	case b >= 1e6:
		return fmt.Sprintf("%.2f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f KB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}
