package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// backlog is one pre-produced input topic and its exact expected result.
type backlog struct {
	n, parts   int    // records; partitions
	prefix     string // picstats' --topic-prefix; the input topic is prefix+"picture"
	topic      string
	exp        totals
	valueBytes float64 // the mean record value's size, as the bare consumer measured it (0 until then)
}

// result is one contender's run, or the medians over its runs.
type result struct {
	name                                    string
	rate, seconds, cpu, rssMB, ratio, ready float64 // ready: seconds from start to first record read / ready / RUNNING; NaN if unknown
	ok                                      bool
	note                                    string
}

func (r *result) figures() []*float64 {
	return []*float64{&r.rate, &r.seconds, &r.cpu, &r.rssMB, &r.ratio, &r.ready}
}

// produce writes n valid registrations (seed 1) into prefix+"picture" on
// parts partitions with the Kafka Streams jar's --produce, which prints the
// exact expected result.
func (e *env) produce(ctx context.Context, prefix string, n, parts int) (*backlog, error) {
	b := &backlog{n: n, parts: parts, prefix: prefix, topic: prefix + "picture"}
	fmt.Printf("producing %d records into %s (%d partitions, seed 1) with the kstreams jar's --produce…\n", n, b.topic, parts)
	cmd := exec.CommandContext(ctx, "java", "-jar", jarPath, "--produce", strconv.Itoa(n), "--seed", "1",
		"--bootstrap", e.broker, "--input", b.topic, "--partitions", strconv.Itoa(parts))
	cmd.Stderr = os.Stdout // its "produced … records/s" line
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("produce: %w", err)
	}
	if b.exp, err = parseExpected(string(out)); err != nil {
		return nil, err
	}
	if b.exp.count != int64(n) {
		return nil, fmt.Errorf("produce: expected count %d, want %d", b.exp.count, n)
	}
	fmt.Printf("expected: %v\n\n", b.exp)
	return b, nil
}

// parseExpected reads the jar's "statistic<TAB>result" lines.
func parseExpected(out string) (totals, error) {
	var t totals
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "\t"); ok {
			if err := t.apply(k, []byte(v)); err != nil {
				return t, fmt.Errorf("expected result: %w", err)
			}
		}
	}
	if t.seen != [4]bool{true, true, true, true} || t.avgCount != t.count {
		return t, fmt.Errorf("expected result incomplete: %q", out)
	}
	return t, nil
}

// drain produces a backlog of n records and runs every contender over it
// o.runs times, printing a table per run and the medians; after picstats'
// last run it measures recovery from the state that run left.
func (e *env) drain(ctx context.Context, n int) error {
	b, err := e.produce(ctx, fmt.Sprintf("bench.%d.", n), n, partitions)
	if err != nil {
		return err
	}
	fmt.Printf("== drain: %d records ==\n", b.n)
	var all [][]result
	for i := range e.o.runs {
		rs, err := e.drainRun(ctx, b, i)
		if err != nil {
			return err
		}
		fmt.Printf("\n%d records, run %d of %d:\n", b.n, i+1, e.o.runs)
		resultTable(rs, b.n, "contender", "vs bare")
		all = append(all, rs)
	}
	fmt.Printf("%d records, medians over %d runs (vs bare = median of the runs' ratios):\n", b.n, e.o.runs)
	resultTable(medians(all), b.n, "contender", "vs bare")
	if b.valueBytes > 0 {
		fmt.Printf("record values: %.1f bytes of JSON on average (measured by the bare consumer)\n", b.valueBytes)
	}
	fmt.Println()
	if !e.o.has("recovery") {
		return nil
	}
	return e.recover(ctx, fmt.Sprintf("after draining %d records", b.n), b.prefix, picstatsStats, b.exp.count)
}

// drainRun runs every contender once, in order, and sets their ratios to
// the bare consumer's rate in this run.
func (e *env) drainRun(ctx context.Context, b *backlog, run int) ([]result, error) {
	var rs []result
	bare := math.NaN()
	for _, c := range e.o.contenders {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var r result
		if c == "bare" {
			r = e.runBare(ctx, b)
		} else {
			r = e.awaitContender(ctx, c, b, strconv.Itoa(run+1))
		}
		r.finish(c, b.n, run)
		if c == "bare" {
			bare = r.rate
		}
		rs = append(rs, r)
	}
	for j := range rs {
		rs[j].ratio = rs[j].rate / bare // NaN without a bare run
	}
	return rs, nil
}

// finish names r, sets its rate over n records (NaN if it failed) and
// prints its line of run run.
func (r *result) finish(name string, n, run int) {
	r.name, r.rate = name, math.NaN()
	if !r.ok {
		r.seconds = 0
	} else if r.seconds > 0 {
		r.rate = float64(n) / r.seconds
	}
	fmt.Printf("  run %d %-16s %7.2f s  ok=%v %s\n", run+1, name, r.seconds, r.ok, r.note)
}

// medians is, per row of the runs in all (each run has the same rows in
// the same order), the medians of the runs that ended exact.
func medians(all [][]result) []result {
	var sum []result
	for j := range all[0] {
		m, cols, failed := result{name: all[0][j].name, ok: true}, make([][]float64, 6), 0
		for _, rs := range all {
			if !rs[j].ok {
				failed++
				continue
			}
			for k, x := range rs[j].figures() {
				cols[k] = append(cols[k], *x)
			}
		}
		for k, p := range m.figures() {
			*p = benchkit.Median(cols[k])
		}
		if failed > 0 {
			m.ok, m.note = false, fmt.Sprintf("%d of %d runs FAILED; medians over the others", failed, len(all))
		}
		sum = append(sum, m)
	}
	return sum
}

// resultTable prints rows of results over n records: first names the
// rows, vs their ratio. CPU s/M is CPU seconds per million records; RSS the
// peak of the largest process.
func resultTable(rs []result, n int, first, vs string) {
	rows := [][]string{{first, "records/s", "seconds", "CPU s", "CPU s/M", "RSS MB", vs, "ready s", "result"}}
	for _, r := range rs {
		res := map[bool]string{true: "exact", false: "FAILED"}[r.ok]
		if r.note != "" {
			res += " (" + r.note + ")"
		}
		rows = append(rows, []string{r.name, f(r.rate, 0), f(r.seconds, 2), f(r.cpu, 2), f(r.cpu*1e6/float64(n), 2),
			f(r.rssMB, 0), f(r.ratio, 2), f(r.ready, 2), res})
	}
	printTable(rows)
}

// awaitContender starts contender c over b and awaits its exact result.
func (e *env) awaitContender(ctx context.Context, c string, b *backlog, tag string) result {
	ch, mark, output, cleanup, err := e.start(ctx, c, b.prefix, b.topic, tag)
	defer cleanup()
	if err != nil {
		return result{note: err.Error()}
	}
	return awaitAll(ctx, e.broker, c, []*benchkit.Child{ch}, []*benchkit.Marker{mark}, output, b.exp)
}

// awaitAll waits until output shows exactly exp, computed by the children
// chs (what they are, for notes), started together, and fills in the time
// from the first one's start, the sum of their CPU seconds by then, the
// last one's ready time (marks; NaN if one has none) and, after stopping
// them, the largest peak RSS.
func awaitAll(ctx context.Context, broker, what string, chs []*benchkit.Child, marks []*benchkit.Marker, output string, exp totals) result {
	r, start := result{ready: math.Inf(-1)}, chs[0].Start
	for _, ch := range chs {
		var cancel context.CancelFunc
		ctx, cancel = ch.Bound(ctx, timeout) // ends when any child exits
		defer cancel()
	}
	at, t, err := awaitExact(ctx, broker, output, exp)
	switch {
	case err == nil:
		r.seconds, r.ok = at.Sub(start).Seconds(), true
		for _, ch := range chs {
			r.cpu += ch.CPU()
		}
	case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		r.note = err.Error()
	default:
		r.note = fmt.Sprintf("no exact result in %v; last output: %v", timeout, t)
		if i := slices.IndexFunc(chs, func(ch *benchkit.Child) bool { return isDone(ch.Done) }); i >= 0 {
			r.note = chs[i].ExitNote(what)
		}
	}
	for _, m := range marks {
		r.ready = math.Max(r.ready, m.Since(start))
	}
	for _, ch := range chs {
		_, rss := ch.Stop()
		if r.rssMB = max(r.rssMB, rss); !r.ok {
			ch.PrintTail(what)
		}
	}
	return r
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
