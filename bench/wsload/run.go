package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// session is one run: the pipeline (nil with --url), the API, the clients
// and the probe, and the report they fill in.
type session struct {
	cfg     config
	base    time.Time // every time in the report is since base
	p       *pipeline
	url     string // the API's base URL
	httpc   *http.Client
	r       *report
	clients []*client
	probe   *probe
}

func (s *session) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "wsload %6.1fs  %s\n", time.Since(s.base).Seconds(), fmt.Sprintf(format, a...))
}

func run(ctx context.Context, cfg config, out io.Writer) int {
	s := &session{cfg: cfg, base: time.Now(), url: strings.TrimSuffix(cfg.url, "/"),
		httpc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
		r:     &report{cfg: cfg, cmdline: commandLine(), machine: benchkit.Machine(), apiPID: cfg.apiPID}}
	err := s.measure(ctx)
	closeAll(s.clients) // any connection that failed before is a drop
	code := 2
	if err != nil {
		s.logf("error: %v", err)
	} else {
		s.sample("clients closed")
		s.r.summarize(s.clients, s.probe)
		s.r.print(out)
		code = 1
		if s.r.ok() {
			code = 0
		}
	}
	if s.p != nil {
		s.p.stop(code == 0, s.logf)
	}
	return code
}

// measure runs the phases in order.
func (s *session) measure(ctx context.Context) error {
	s.r.nofile = noFileLimit(s.cfg.clients)
	s.logf("%s", s.r.nofile)
	if err := s.start(ctx); err != nil {
		return err
	}
	s.sample("before clients")
	s.probe = newProbe(s.base)
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); s.probe.run(probeCtx, s.url) }()
	defer func() { stopProbe(); <-probeDone }()
	if err := s.connect(ctx); err != nil {
		return err
	}
	if err := s.flow(ctx); err != nil {
		return err
	}
	if !s.cfg.noCheck {
		s.check(ctx)
	}
	return nil
}

// start starts the pipeline unless --url names one, and waits until the
// API is ready (and has counted the first registration).
func (s *session) start(ctx context.Context) error {
	if s.url == "" {
		var err error
		if s.p, err = startPipeline(ctx, s.cfg.rate, s.logf); err != nil {
			return err
		}
		s.r.children = append(s.r.children, s.p.allCmd)
		s.url, s.r.apiPID = "http://"+s.p.addr, s.p.all.Pid()
	}
	var exited <-chan struct{}
	if s.p != nil {
		exited = s.p.all.Done
	}
	if err := waitReady(ctx, s.httpc, s.url, exited, 90*time.Second); err != nil {
		if s.p != nil {
			err = fmt.Errorf("%w; the pipeline's log ends:\n%s", err, benchkit.Tail(s.p.all.Log, 20))
		}
		return err
	}
	s.logf("API ready at %s", s.url)
	if s.p == nil {
		return nil
	}
	return waitCount(ctx, s.httpc, s.url, 1, 20*time.Second) // the first registration: the snapshots are not empty
}

// sample notes the API process's /proc figures under name.
func (s *session) sample(name string) {
	if s.r.apiPID == 0 {
		return
	}
	ps, err := benchkit.ReadProc(s.r.apiPID)
	if err != nil {
		s.logf("sampling pid %d: %v", s.r.apiPID, err)
		return
	}
	s.r.proc = append(s.r.proc, phaseProc{name, ps})
}

// connect opens the clients and waits for their snapshots.
func (s *session) connect(ctx context.Context) error {
	wsURL := "ws" + strings.TrimPrefix(s.url, "http") + "/api/ws"
	s.r.cache = newMsgCache()
	s.logf("connecting %d clients to %s, %d handshakes at a time", s.cfg.clients, wsURL, s.cfg.dialConcurrency)
	t := time.Now()
	s.clients, s.r.connectFailures = connectAll(ctx, wsURL, s.cfg.clients, s.cfg.dialConcurrency, s.base, s.r.cache)
	s.r.connectWall = time.Since(t)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.logf("%d connected, %d failed in %v; waiting for their snapshots", len(s.clients), len(s.r.connectFailures), s.r.connectWall.Round(time.Millisecond))
	waitSnapshots(ctx, s.clients, 15*time.Second)
	s.sample("clients connected")
	return nil
}

// flow lets the updates flow: the datafeed's registrations, or for
// --duration whatever feeds the API at --url.
func (s *session) flow(ctx context.Context) error {
	selfBefore, apiBefore := benchkit.SelfCPU(), s.r.lastSample()
	start := time.Now()
	if s.p != nil {
		count := int(math.Round(s.cfg.rate * s.cfg.duration.Seconds()))
		s.logf("starting the datafeed: %d registrations at %g/s", count, s.cfg.rate)
		if err := s.p.runFeed(ctx, count, s.cfg.duration+2*time.Minute); err != nil {
			return err
		}
		s.r.children = append(s.r.children, s.p.feedCmd)
	} else {
		s.logf("measuring for %v (the feed is whatever runs at %s)", s.cfg.duration, s.url)
		select {
		case <-time.After(s.cfg.duration):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.r.flow, s.r.selfCPU = time.Since(start), benchkit.SelfCPU()-selfBefore
	s.sample("after the flow")
	if after := s.r.lastSample(); apiBefore.OK && after.OK {
		s.r.apiFlowCPU = after.CPU - apiBefore.CPU
	}
	s.r.updatesAtFlowEnd, s.r.bytesAtFlowEnd = received(s.clients)
	s.logf("updates flowed for %v", s.r.flow.Round(time.Millisecond))
	return nil
}

// check waits for REST to be quiescent, then for every client to hold
// exactly what it serves.
func (s *session) check(ctx context.Context) {
	wait := 30 * time.Second
	if s.p == nil {
		wait = 10 * time.Second
	}
	s.logf("waiting for /api/stats to stay unchanged for %v (at most %v)", quietFor, wait)
	rest, err := waitQuiet(ctx, s.httpc, s.url, wait)
	if err != nil {
		s.r.checkErr = err
		return
	}
	s.r.restStats = len(rest)
	t := time.Now()
	_ = benchkit.Poll(ctx, convergeTimeout, 100*time.Millisecond, func() error {
		if s.r.equal, s.r.mismatches = compareAll(s.clients, rest); s.r.equal < len(s.clients) {
			return errors.New("not yet")
		}
		return nil
	})
	s.r.convergeWait, s.r.checked = time.Since(t), true
}

func commandLine() string {
	name := os.Args[0]
	if strings.Contains(name, "go-build") { // go run
		name = "go run ./bench/wsload"
	}
	return strings.Join(append([]string{name}, os.Args[1:]...), " ")
}
