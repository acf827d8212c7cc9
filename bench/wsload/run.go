package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// session is one run: the pipeline, the clients and the probe, and what
// they measured.
type session struct {
	cfg     config
	base    time.Time // every time of a sample is since base
	machine string    // at the start
	p       *pipeline
	url     string // the API's base URL
	hc      *http.Client
	cache   msgCache
	clients []*client
	probe   probe

	failures               []string // of the connects
	connectWall            time.Duration
	proc                   []phaseProc // the API process at each phase
	flow, selfCPU, flowCPU time.Duration
	flowUpdates            int
	flowBytes              int64
	checkErr               error // why the check could not be done
	restStats, equal       int
	mismatches             []string
}

// phaseProc is the API process's /proc sample at one phase of the run.
type phaseProc struct {
	name string
	s    benchkit.ProcSample
}

func (s *session) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "wsload %6.1fs  %s\n", time.Since(s.base).Seconds(), fmt.Sprintf(format, a...))
}

func run(ctx context.Context, cfg config) int {
	s := &session{cfg: cfg, base: time.Now(), machine: benchkit.Machine(), probe: probe{first: map[int64]time.Duration{}},
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	err := s.measure(ctx)
	closeAll(s.clients) // a connection that failed before this is a drop
	code := 2
	if err != nil {
		s.logf("error: %v", err)
	} else {
		s.sample("clients closed")
		code = s.report(os.Stdout)
	}
	if s.p != nil {
		s.p.stop(code != 0)
	}
	return code
}

// measure starts the pipeline, connects the clients, lets the updates flow
// and checks the clients against REST, in that order.
func (s *session) measure(ctx context.Context) (err error) {
	s.logf("building picstats and starting it")
	if s.p, err = startPipeline(ctx, s.cfg.rate); err != nil {
		return err
	}
	s.url = "http://" + s.p.addr
	s.logf("started (pid %d): %s  [log %s]", s.p.all.Pid(), s.p.cmds[0], s.p.all.Log)
	if err := s.waitReady(ctx); err != nil {
		return fmt.Errorf("%w; the pipeline's log ends:\n%s", err, benchkit.Tail(s.p.all.Log, 20))
	}
	s.sample("before clients")
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); s.probe.run(probeCtx, s.url, s.base) }()
	defer func() { stopProbe(); <-probeDone }()

	s.logf("connecting %d clients, %d handshakes at a time", s.cfg.clients, s.cfg.dialConcurrency)
	t := time.Now()
	s.clients, s.failures = connectAll(ctx, "ws://"+s.p.addr+"/api/ws", s.cfg.clients, s.cfg.dialConcurrency, s.base, &s.cache)
	if s.connectWall = time.Since(t); ctx.Err() != nil {
		return ctx.Err()
	}
	s.logf("%d connected, %d failed in %v; waiting for their snapshots", len(s.clients), len(s.failures), s.connectWall.Round(time.Millisecond))
	waitSnapshots(ctx, s.clients, 15*time.Second)
	s.sample("clients connected")

	count := int(math.Round(s.cfg.rate * s.cfg.duration.Seconds()))
	s.logf("starting the datafeed: %d registrations at %g/s", count, s.cfg.rate)
	self, t := benchkit.SelfCPU(), time.Now()
	if err := s.p.runFeed(ctx, count, s.cfg.rate, s.cfg.duration+2*time.Minute); err != nil {
		return err
	}
	s.flow, s.selfCPU = time.Since(t), benchkit.SelfCPU()-self
	s.sample("after the flow")
	if n := len(s.proc); n >= 2 && s.proc[n-2].s.OK && s.proc[n-1].s.OK {
		s.flowCPU = s.proc[n-1].s.CPU - s.proc[n-2].s.CPU
	}
	each(s.clients, func(c *client) { s.flowUpdates, s.flowBytes = s.flowUpdates+c.updates, s.flowBytes+c.bytes })
	s.logf("updates flowed for %v; waiting for /api/stats to stay unchanged for %v", s.flow.Round(time.Millisecond), quietFor)
	s.check(ctx)
	return nil
}

// waitReady waits until /readyz answers 200 and the API has counted the
// pipeline's first registration, so that the snapshots are not empty.
func (s *session) waitReady(ctx context.Context) error {
	ctx, cancel := s.p.all.Bound(ctx, 2*time.Minute) // ends if the pipeline exits
	defer cancel()
	return benchkit.Poll(ctx, 90*time.Second, 50*time.Millisecond, func() error {
		if _, err := benchkit.Get(ctx, s.hc, s.url+"/readyz"); err != nil {
			return err
		}
		n, err := benchkit.GetCount(ctx, s.hc, s.url)
		if err == nil && n < 1 {
			err = errors.New("the first registration is not counted yet")
		}
		return err
	})
}

// sample notes the API process's /proc figures under name.
func (s *session) sample(name string) {
	ps, err := benchkit.ReadProc(s.p.all.Pid())
	if err != nil {
		s.logf("sampling the API process: %v", err)
	}
	s.proc = append(s.proc, phaseProc{name, ps})
}

// check waits for REST to be quiescent, then for every client to hold
// exactly what it serves.
func (s *session) check(ctx context.Context) {
	rest, err := waitQuiet(ctx, s.hc, s.url, 30*time.Second)
	if s.checkErr = err; err != nil {
		return
	}
	s.restStats = len(rest)
	_ = benchkit.Poll(ctx, convergeTimeout, 100*time.Millisecond, func() error {
		s.equal, s.mismatches = 0, nil
		each(s.clients, func(c *client) {
			why := diff(c.latest, rest)
			if why == "" && c.err != nil {
				why = "connection dropped: " + c.err.Error()
			}
			if why == "" {
				s.equal++
			} else if len(s.mismatches) < 5 {
				s.mismatches = append(s.mismatches, fmt.Sprintf("client %d: %s", c.id, why))
			}
		})
		if s.equal < len(s.clients) {
			return errors.New("not yet")
		}
		return nil
	})
}

func commandLine() string {
	name := os.Args[0]
	if strings.Contains(name, "go-build") { // go run
		name = "go run ./bench/wsload"
	}
	return strings.Join(append([]string{name}, os.Args[1:]...), " ")
}

// waitQuiet polls /api/stats until it stays the same for quietFor and
// returns it, compacted per statistic.
func waitQuiet(ctx context.Context, hc *http.Client, api string, timeout time.Duration) (map[string][]byte, error) {
	var last []byte
	var since time.Time
	err := benchkit.Poll(ctx, timeout, 100*time.Millisecond, func() error {
		b, err := benchkit.Get(ctx, hc, api+"/api/stats")
		if err != nil {
			return err
		}
		if !bytes.Equal(b, last) {
			last, since = b, time.Now()
		}
		if time.Since(since) < quietFor {
			return errors.New("/api/stats still changing")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(last, &raw); err != nil {
		return nil, fmt.Errorf("/api/stats: %w", err)
	}
	return compactAll(raw)
}
