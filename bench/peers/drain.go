package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// backlog is one pre-produced input topic and its exact expected result.
type backlog struct {
	n      int
	prefix string // picstats' --topic-prefix; the input topic is prefix+"picture"
	topic  string
	exp    expected
	// valueBytes is the average record value's size, as the bare consumer
	// measured it (0 until then).
	valueBytes float64
}

// expected is the exact final result, from the jar's --produce output.
type expected struct {
	count, total, min, max int64
}

// result is one contender's run (or the medians over its runs).
type result struct {
	name                string
	seconds, cpu, rssMB float64
	ready               float64 // seconds from start to first record read / ready / RUNNING; NaN if unknown
	ok                  bool
	note                string
	rate, ratio         float64
}

// produce writes n valid registrations (seed 1) with the Kafka Streams
// jar's --produce, which prints the exact expected result.
func (e *env) produce(ctx context.Context, n int) (*backlog, error) {
	b := &backlog{n: n, prefix: fmt.Sprintf("bench.%d.", n)}
	b.topic = b.prefix + "picture"
	fmt.Printf("producing %d records into %s (%d partitions, seed 1) with the kstreams jar's --produce…\n", n, b.topic, partitions)
	cmd := exec.CommandContext(ctx, "java", "-jar", jarPath, "--produce", strconv.Itoa(n), "--seed", "1",
		"--bootstrap", e.broker, "--input", b.topic, "--partitions", strconv.Itoa(partitions))
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
	fmt.Printf("expected: count %d, sum %d, min %d, max %d\n\n", b.exp.count, b.exp.total, b.exp.min, b.exp.max)
	return b, nil
}

func parseExpected(out string) (expected, error) {
	var t totals
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "\t"); ok {
			if err := t.apply(k, []byte(v)); err != nil {
				return expected{}, fmt.Errorf("expected result: %w", err)
			}
		}
	}
	if t.seen != [4]bool{true, true, true, true} || t.avgCount != t.count {
		return expected{}, fmt.Errorf("expected result incomplete: %q", out)
	}
	return expected{count: t.count, total: t.total, min: t.min, max: t.max}, nil
}

// drain runs every contender over backlog b, o.runs times, and prints a
// table per run and the medians; after picstats' last run it measures
// recovery from the state that run left.
func (e *env) drain(ctx context.Context, b *backlog) error {
	fmt.Printf("== drain: %d records ==\n", b.n)
	var all [][]result
	for i := range e.o.runs {
		rs, err := e.drainRun(ctx, b, i)
		if err != nil {
			return err
		}
		fmt.Printf("\n%d records, run %d of %d:\n", b.n, i+1, e.o.runs)
		drainTable(rs)
		all = append(all, rs)
	}
	fmt.Printf("%d records, medians over %d runs (vs bare = median of the runs' ratios):\n", b.n, e.o.runs)
	drainTable(e.medians(all))
	if b.valueBytes > 0 {
		fmt.Printf("record values: %.1f bytes of JSON on average (measured by the bare consumer)\n", b.valueBytes)
	}
	fmt.Println()
	if e.o.has("recovery") {
		return e.recovery(ctx, b)
	}
	return nil
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
		switch c {
		case "bare":
			r = e.runBare(ctx, b)
		case "picstats":
			r = e.runPicstats(ctx, b)
		case "goka-naive":
			r = e.runNaive(ctx, b)
		default:
			r = e.runKStreams(ctx, b, c, run)
		}
		r.name, r.rate = c, math.NaN()
		if !r.ok {
			r.seconds = 0
		} else if r.seconds > 0 {
			r.rate = float64(b.n) / r.seconds
		}
		if c == "bare" {
			bare = r.rate
		}
		fmt.Printf("  run %d %-16s %7.2f s  ok=%v %s\n", run+1, c, r.seconds, r.ok, r.note)
		rs = append(rs, r)
	}
	for j := range rs {
		rs[j].ratio = rs[j].rate / bare // NaN without a bare run
	}
	return rs, nil
}

// medians is, per contender, the medians of its runs that ended exact.
func (e *env) medians(all [][]result) []result {
	var sum []result
	for j, c := range e.o.contenders {
		m := result{name: c, ok: true}
		var cols [6][]float64
		failed := 0
		for _, rs := range all {
			if r := rs[j]; r.ok {
				for k, x := range []float64{r.rate, r.seconds, r.cpu, r.rssMB, r.ratio, r.ready} {
					cols[k] = append(cols[k], x)
				}
			} else {
				failed++
			}
		}
		for k, p := range []*float64{&m.rate, &m.seconds, &m.cpu, &m.rssMB, &m.ratio, &m.ready} {
			*p = benchkit.Median(cols[k])
		}
		if failed > 0 {
			m.ok = false
			m.note = fmt.Sprintf("%d of %d runs FAILED; medians over the others", failed, e.o.runs)
		}
		sum = append(sum, m)
	}
	return sum
}

func drainTable(rs []result) {
	t := benchkit.NewTable("contender", "records/s", "seconds", "CPU s", "RSS MB", "vs bare", "ready s", "result")
	t.LeftFrom = 7
	for _, r := range rs {
		res := "exact"
		if !r.ok {
			res = "FAILED"
		}
		if r.note != "" {
			res += " (" + r.note + ")"
		}
		t.Row(r.name, benchkit.F(r.rate, 0), benchkit.F(r.seconds, 2), benchkit.F(r.cpu, 2), benchkit.F(r.rssMB, 0), benchkit.F(r.ratio, 2), benchkit.F(r.ready, 2), res)
	}
	t.Print(os.Stdout)
	fmt.Println()
}

// awaitContender waits until child c's output topic shows exactly b's
// result, and fills in the time from the child's start, its CPU seconds by
// then and (after stopping it) its peak RSS.
func (e *env) awaitContender(ctx context.Context, c *benchkit.Child, mark *benchkit.Marker, what, output string, b *backlog) result {
	r := result{}
	ctx, cancel := c.Bound(ctx, timeout)
	defer cancel()
	at, t, err := awaitExact(ctx, e.broker, output, b.exp)
	switch {
	case err == nil:
		r.seconds, r.cpu, r.ok = at.Sub(c.Start).Seconds(), c.CPU(), true
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		select {
		case <-c.Done:
			r.note = c.ExitNote(what)
		default:
			r.note = fmt.Sprintf("no exact result in %v; last output: %v", timeout, t)
		}
	default:
		r.note = err.Error()
	}
	r.ready = mark.Since(c.Start)
	_, r.rssMB = c.Stop()
	if !r.ok {
		c.PrintTail(what)
	}
	return r
}
