package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// pipeline is picstats run by wsload: the all-in-one process (embedded
// broker, processor, API) and, for the flow, a datafeed.
type pipeline struct {
	tmp, bin, addr  string
	brokerPort      int
	rate            float64
	all, feed       *benchkit.Child
	allCmd, feedCmd string
}

// startPipeline builds picstats and starts the all-in-one process; a
// returned pipeline must be stopped.
func startPipeline(ctx context.Context, rate float64, logf func(string, ...any)) (*pipeline, error) {
	p := &pipeline{rate: rate}
	var err error
	if p.tmp, err = os.MkdirTemp("", "wsload-"); err != nil {
		return nil, err
	}
	logf("building picstats into %s", p.tmp)
	ports, err := benchkit.FreePorts(2)
	if err == nil {
		p.bin, err = benchkit.BuildPicstats(ctx, p.tmp)
	}
	if err != nil {
		_ = os.RemoveAll(p.tmp)
		return nil, err
	}
	p.addr, p.brokerPort = fmt.Sprintf("127.0.0.1:%d", ports[0]), ports[1]
	args := []string{"--rate", fmtRate(rate), "--count", "1", "--addr", p.addr, "--embedded-port", strconv.Itoa(p.brokerPort)}
	p.allCmd = "picstats " + strings.Join(args, " ")
	if p.all, err = benchkit.Start(ctx, filepath.Join(p.tmp, "picstats.log"), nil, p.bin, args...); err != nil {
		_ = os.RemoveAll(p.tmp)
		return nil, err
	}
	logf("started (pid %d): %s  [log %s]", p.all.Pid(), p.allCmd, p.all.Log)
	return p, nil
}

// runFeed runs the datafeed for count registrations and waits until it
// has sent them all (at most timeout).
func (p *pipeline) runFeed(ctx context.Context, count int, timeout time.Duration) error {
	args := []string{"datafeed", "--brokers", fmt.Sprintf("127.0.0.1:%d", p.brokerPort), "--rate", fmtRate(p.rate), "--count", strconv.Itoa(count)}
	p.feedCmd = "picstats " + strings.Join(args, " ")
	var err error
	if p.feed, err = benchkit.Start(ctx, filepath.Join(p.tmp, "datafeed.log"), nil, p.bin, args...); err != nil {
		return err
	}
	select {
	case <-p.feed.Done:
		if p.feed.Err != nil {
			return fmt.Errorf("datafeed: %v (log: %s)", p.feed.Err, p.feed.Log)
		}
		return nil
	case <-p.all.Done:
		return fmt.Errorf("the pipeline exited during the run: %v (log: %s)", p.all.Err, p.all.Log)
	case <-time.After(timeout):
		return errors.New("the datafeed did not finish in time")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops the processes and removes their logs if removeLogs.
func (p *pipeline) stop(removeLogs bool, logf func(string, ...any)) {
	if p.feed != nil {
		p.feed.Stop()
	}
	p.all.Stop()
	if removeLogs {
		_ = os.RemoveAll(p.tmp)
	} else {
		logf("pipeline logs kept in %s", p.tmp)
	}
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }
