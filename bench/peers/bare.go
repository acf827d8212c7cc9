package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// The bare contender: benchkit.ReadAll (the bare consumer of `go run
// ./bench` too) in a child process, which writes what it saw as JSON.

func (e *env) runBare(ctx context.Context, b *backlog) result {
	report := filepath.Join(e.tmp, "bare-report.json")
	r := result{ready: math.NaN()}
	c, err := benchkit.Start(ctx, e.log("bare"), nil, e.self, "--mode", "bare", "--brokers", e.broker, "--topic", b.topic, "--report", report)
	if err != nil {
		r.note = err.Error()
		return r
	}
	select {
	case <-c.Done:
	case <-time.After(timeout):
		r.note = "timeout"
	}
	r.seconds = time.Since(c.Start).Seconds()
	r.cpu, r.rssMB = c.Stop()
	if c.Err != nil {
		r.note = c.ExitNote("bare")
		c.PrintTail("bare")
		return r
	}
	var rep benchkit.Bare
	raw, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(raw, &rep)
	}
	if err != nil {
		r.note = fmt.Sprintf("report: %v", err)
		return r
	}
	r.ready = rep.First.Sub(c.Start).Seconds()
	if rep.Valid != b.exp.count || rep.Sum != b.exp.total || rep.Min != b.exp.min || rep.Max != b.exp.max {
		r.note = fmt.Sprintf("got count %d sum %d min %d max %d", rep.Valid, rep.Sum, rep.Min, rep.Max)
		return r
	}
	if rep.Records > 0 {
		b.valueBytes = float64(rep.Bytes) / float64(rep.Records)
	}
	r.ok = true
	return r
}

// bareChild reads every record of the topic and writes what it saw to the
// report file as JSON.
func bareChild(broker, topic, report string) error {
	b, err := benchkit.ReadAll(context.Background(), []string{broker}, topic)
	if err != nil {
		return err
	}
	out, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return os.WriteFile(report, out, 0o644)
}
