package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// pipeline is the picstats that wsload runs: the all-in-one process
// (embedded broker, processor, API, and a feed that stops after one
// registration, so that the snapshots are not empty) and, for the flow, a
// datafeed of its own, which keeps the connect storm and the measured
// window apart and the API process's CPU time free of the producer's.
type pipeline struct {
	tmp, bin, addr, broker string
	all, feed              *benchkit.Child
	cmds                   []string
}

// startPipeline builds picstats and starts the all-in-one process; a
// returned pipeline must be stopped.
func startPipeline(ctx context.Context, rate float64) (*pipeline, error) {
	tmp, err := os.MkdirTemp("", "wsload-")
	if err != nil {
		return nil, err
	}
	p := &pipeline{tmp: tmp}
	ports, err := benchkit.FreePorts(2)
	if err == nil {
		p.bin, err = benchkit.BuildPicstats(ctx, tmp)
	}
	if err == nil {
		p.addr, p.broker = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
		p.all, err = p.start(ctx, "picstats.log", "--rate", fmtRate(rate), "--count", "1", "--addr", p.addr, "--embedded-port", strconv.Itoa(ports[1]))
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	return p, nil
}

func (p *pipeline) start(ctx context.Context, log string, args ...string) (*benchkit.Child, error) {
	p.cmds = append(p.cmds, "picstats "+strings.Join(args, " "))
	return benchkit.Start(ctx, filepath.Join(p.tmp, log), nil, p.bin, args...)
}

// runFeed runs the datafeed for count registrations and waits until it
// has sent them all.
func (p *pipeline) runFeed(ctx context.Context, count int, rate float64, timeout time.Duration) (err error) {
	if p.feed, err = p.start(ctx, "datafeed.log", "datafeed", "--brokers", p.broker, "--rate", fmtRate(rate), "--count", strconv.Itoa(count)); err != nil {
		return err
	}
	select {
	case <-p.feed.Done:
		if p.feed.Err != nil {
			return fmt.Errorf("datafeed: %w (log: %s)", p.feed.Err, p.feed.Log)
		}
		return nil
	case <-p.all.Done:
		return fmt.Errorf("the pipeline exited during the run: %v (log: %s)", p.all.Err, p.all.Log)
	case <-time.After(timeout):
		return fmt.Errorf("the datafeed did not finish in %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops the processes and removes their logs, unless keep.
func (p *pipeline) stop(keep bool) {
	if p.feed != nil {
		p.feed.Stop()
	}
	p.all.Stop()
	if keep {
		fmt.Fprintf(os.Stderr, "wsload: pipeline logs kept in %s\n", p.tmp)
	} else {
		_ = os.RemoveAll(p.tmp)
	}
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }
