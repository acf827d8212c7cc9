// Command wsload load-tests picstats' websocket endpoint /api/ws: it opens
// many clients, measures connect times and push latency while registrations
// flow, then checks that every client ends with exactly the statistics REST
// serves.
//
// Usage:
//
//	go run ./bench/wsload [--clients 1000] [--duration 20s] [--rate 200] [--dial-concurrency 50]
//	go run ./bench/wsload --url http://127.0.0.1:8080 [--api-pid PID] [--no-check]
//
// Without --url it runs the pipeline itself, from the repository root, in its
// own process group (killed at the end, also on error or Ctrl-C):
//
//  1. go build -o $TMP/picstats .
//  2. picstats --rate R --count 1 --addr 127.0.0.1:<free> --embedded-port <free>
//     (embedded broker, processor, API; the feed stops after 1 registration)
//  3. once /readyz is 200 and every client holds its snapshot:
//     picstats datafeed --brokers 127.0.0.1:<embedded-port> --rate R --count R×duration
//     in the same process group: the updates flow for --duration, then the
//     feed stops on its own, so the final check compares against values that
//     no longer change.
//
// Splitting the feed off keeps the connect storm and the measured window
// apart, and leaves the API process's CPU time free of the producer's.
//
// Push latency, per (client, count value): T0 is when a probe goroutine, which
// polls GET /api/stats/count every 5 ms, sent the first request whose answer
// held that value; T1 is when the client finished reading an update message
// whose "count" carries that value. latency = T1 − T0. The REST value is
// stored before the hub is told, so T0 is at most one poll (5 ms plus one GET)
// after the value became observable: latencies are under-stated by up to
// that much, and a few may be negative when a push beats the probe.
//
// With --url the tool cannot stop the feed: for the convergence check the
// feed must be stopped (the check waits up to 10 s for /api/stats to stop
// changing for 2 s and fails otherwise), or pass --no-check.
//
// Exit status: 0 all good; 1 a connection failed or was dropped, a message
// broke the protocol, or a client's final statistics differ from REST;
// 2 the test could not run.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type config struct {
	url             string
	clients         int
	duration        time.Duration
	rate            float64
	dialConcurrency int
	noCheck         bool
	apiPID          int
}

const (
	probeInterval   = 5 * time.Millisecond
	quietFor        = 2 * time.Second  // /api/stats unchanged this long: quiescent
	convergeTimeout = 5 * time.Second  // for every client to match REST
	dialTimeout     = 15 * time.Second // per client handshake
)

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "", "API base `URL` (e.g. http://127.0.0.1:8080); empty: start the pipeline from the repository root")
	flag.IntVar(&cfg.clients, "clients", 1000, "websocket clients to open")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long updates flow to the connected clients")
	flag.Float64Var(&cfg.rate, "rate", 200, "registrations/s of the datafeed the tool starts (without --url)")
	flag.IntVar(&cfg.dialConcurrency, "dial-concurrency", 50, "websocket handshakes in flight at once")
	flag.BoolVar(&cfg.noCheck, "no-check", false, "skip the final check against REST (needed with --url if the feed keeps running)")
	flag.IntVar(&cfg.apiPID, "api-pid", 0, "with --url: `pid` of the API process, to sample its CPU time and RSS")
	flag.Parse()
	if flag.NArg() > 0 || cfg.clients < 1 || cfg.duration <= 0 || cfg.rate <= 0 || cfg.dialConcurrency < 1 {
		fmt.Fprintln(os.Stderr, "wsload: want --clients ≥ 1, --duration > 0, --rate > 0, --dial-concurrency ≥ 1 and no arguments")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg, os.Stdout)
	stop()
	os.Exit(code)
}

// ---------------------------------------------------------------- the run

type phaseProc struct {
	name string
	s    procSample
}

func run(ctx context.Context, cfg config, out io.Writer) (code int) {
	base := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "wsload %6.1fs  %s\n", time.Since(base).Seconds(), fmt.Sprintf(format, a...))
	}
	fail := func(err error) int {
		logf("error: %v", err)
		return 2
	}
	r := &report{cfg: cfg, cmdline: commandLine()}
	r.loadavg = readLoadavg()

	// 1. File descriptors: each client is a socket here and one in the API.
	r.nofile = raiseNoFile(cfg.clients)
	logf("%s", r.nofile.text)

	// 2. The pipeline.
	baseURL := strings.TrimSuffix(cfg.url, "/")
	var p *pipeline
	apiPID := cfg.apiPID
	if baseURL == "" {
		var err error
		p, err = startPipeline(ctx, cfg.rate, logf)
		if p != nil {
			defer func() {
				if err := p.stop(); err != nil {
					logf("stopping the pipeline: %v", err)
					if code == 0 {
						code = 2
					}
				}
				if code == 0 {
					_ = os.RemoveAll(p.tmp)
				} else {
					logf("pipeline logs kept in %s", p.tmp)
				}
			}()
		}
		if err != nil {
			return fail(err)
		}
		r.children = append(r.children, p.allCmd)
		baseURL = "http://" + p.addr
		apiPID = p.all.Process.Pid
	}
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	if err := waitReady(ctx, httpc, baseURL, p, 90*time.Second); err != nil {
		return fail(err)
	}
	logf("API ready at %s", baseURL)
	if p != nil { // the first registration, so the snapshots are not empty
		if err := waitCount(ctx, httpc, baseURL, 1, 20*time.Second); err != nil {
			return fail(err)
		}
	}
	sample := func(name string) {
		if apiPID == 0 {
			return
		}
		s, err := readProc(apiPID)
		if err != nil {
			logf("sampling pid %d: %v", apiPID, err)
			return
		}
		r.proc = append(r.proc, phaseProc{name, s})
	}
	r.apiPID = apiPID
	sample("before clients")

	// 3. The probe: first sighting of every count value over REST.
	pr := newProbe(base)
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); pr.run(probeCtx, baseURL+"/api/stats/count") }()
	defer func() { stopProbe(); <-probeDone }()

	// 4. The clients.
	wsURL := "ws" + strings.TrimPrefix(baseURL, "http") + "/api/ws"
	cache := newMsgCache()
	logf("connecting %d clients to %s, %d handshakes at a time", cfg.clients, wsURL, cfg.dialConcurrency)
	t := time.Now()
	clients, failures := connectAll(ctx, wsURL, cfg.clients, cfg.dialConcurrency, base, cache)
	r.connectWall = time.Since(t)
	r.clients, r.connectFailures = clients, failures
	defer closeAll(clients)
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	logf("%d connected, %d failed in %v; waiting for their snapshots", len(clients), len(failures), r.connectWall.Round(time.Millisecond))
	waitSnapshots(ctx, clients, 15*time.Second)
	sample("clients connected")

	// 5. Updates flow.
	selfBefore := selfCPU()
	var apiBefore procSample
	if len(r.proc) > 0 {
		apiBefore = r.proc[len(r.proc)-1].s
	}
	flowStart := time.Now()
	if p != nil {
		count := int(math.Round(cfg.rate * cfg.duration.Seconds()))
		logf("starting the datafeed: %d registrations at %g/s", count, cfg.rate)
		if err := p.startFeed(count); err != nil {
			return fail(err)
		}
		r.children = append(r.children, p.feedCmd)
		select {
		case <-p.feedDone:
			if p.feedErr != nil {
				return fail(fmt.Errorf("datafeed: %v (log: %s)", p.feedErr, p.feedLog))
			}
		case <-p.allDone:
			return fail(fmt.Errorf("the pipeline exited during the run: %v (log: %s)", p.allErr, p.allLog))
		case <-time.After(cfg.duration + 2*time.Minute):
			return fail(errors.New("the datafeed did not finish in time"))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	} else {
		logf("measuring for %v (the feed is whatever runs at %s)", cfg.duration, baseURL)
		select {
		case <-time.After(cfg.duration):
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	r.flow = time.Since(flowStart)
	r.selfCPU = selfCPU() - selfBefore
	sample("after the flow")
	if len(r.proc) > 0 && apiBefore.ok {
		r.apiFlowCPU = r.proc[len(r.proc)-1].s.cpu - apiBefore.cpu
	}
	r.updatesAtFlowEnd, r.bytesAtFlowEnd = received(clients)
	logf("updates flowed for %v", r.flow.Round(time.Millisecond))

	// 6. The check: quiescent REST, then every client against it.
	if !cfg.noCheck {
		wait := 30 * time.Second
		if p == nil {
			wait = 10 * time.Second
		}
		logf("waiting for /api/stats to stay unchanged for %v (at most %v)", quietFor, wait)
		rest, err := waitQuiet(ctx, httpc, baseURL, wait)
		if err != nil {
			r.checkErr = err
		} else {
			r.restStats = len(rest)
			t := time.Now()
			for {
				r.equal, r.mismatches = compareAll(clients, rest)
				if r.equal == len(clients) || time.Since(t) > convergeTimeout || ctx.Err() != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			r.convergeWait = time.Since(t)
			r.checked = true
		}
	}
	stopProbe()
	<-probeDone
	r.probe = pr

	// 7. Close the clients: any connection that failed before is a drop.
	closeAll(clients)
	sample("clients closed")
	r.summarize(cache)
	r.print(out)
	if !r.ok() {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------- messages

// parsed is one distinct message, decoded once and shared by every client
// that received the same bytes: the hub sends one encoding of an update to
// all clients, so decoding it per client would mostly load this tool. The
// cache is keyed by the full message, so a client's state is exactly what
// decoding its own bytes would give.
type parsed struct {
	typ      string
	stats    map[string][]byte // compacted result per statistic
	count    int64             // count.registrations, if hasCount
	hasCount bool
	err      error
}

func parseMessage(b []byte) *parsed {
	var m struct {
		V     int                        `json:"v"`
		Type  string                     `json:"type"`
		Stats map[string]json.RawMessage `json:"stats"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return &parsed{err: fmt.Errorf("not JSON: %w", err)}
	}
	if m.V != 1 || (m.Type != "snapshot" && m.Type != "update") || m.Stats == nil {
		return &parsed{err: fmt.Errorf("unexpected message: v=%d type=%q stats=%v", m.V, m.Type, m.Stats != nil)}
	}
	p := &parsed{typ: m.Type, stats: make(map[string][]byte, len(m.Stats))}
	for name, raw := range m.Stats {
		c, err := compact(raw)
		if err != nil {
			return &parsed{err: fmt.Errorf("statistic %s: %w", name, err)}
		}
		p.stats[name] = c
	}
	if raw, ok := p.stats["count"]; ok {
		p.count, p.hasCount = parseCount(raw)
	}
	return p
}

func compact(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// parseCount reads {"registrations":N}, the count statistic's result.
func parseCount(raw []byte) (int64, bool) {
	var c struct {
		Registrations *int64 `json:"registrations"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Registrations == nil {
		return 0, false
	}
	return *c.Registrations, true
}

type msgCache struct {
	mu sync.Mutex
	m  map[string]*parsed
	n  atomic.Int64 // distinct messages decoded
}

func newMsgCache() *msgCache { return &msgCache{m: map[string]*parsed{}} }

func (c *msgCache) get(b []byte) *parsed {
	c.mu.Lock()
	p, ok := c.m[string(b)]
	c.mu.Unlock()
	if ok {
		return p
	}
	p = parseMessage(b)
	c.n.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.m[string(b)]; ok {
		return q
	}
	if len(c.m) >= 4096 { // bounded for long --url runs; old messages are not sent again
		clear(c.m)
	}
	c.m[string(b)] = p
	return p
}

// ---------------------------------------------------------------- clients

type sample struct {
	count int64
	at    time.Duration // since base
}

type client struct {
	id        int
	conn      *websocket.Conn
	dialStart time.Duration // since base
	handshake time.Duration
	done      chan struct{} // the reader stopped
	closing   atomic.Bool   // we are closing: a read error is not a drop

	mu         sync.Mutex
	snapshotAt time.Duration // since base; 0: none yet
	latest     map[string][]byte
	updates    int
	bytes      int64
	samples    []sample
	protoErr   string
	err        error // why the reader stopped, if it did before closing
}

func connectAll(ctx context.Context, wsURL string, n, concurrency int, base time.Time, cache *msgCache) ([]*client, []string) {
	dialer := &websocket.Dialer{HandshakeTimeout: dialTimeout, ReadBufferSize: 16 << 10, WriteBufferSize: 1 << 10}
	var (
		mu       sync.Mutex
		clients  []*client
		failures []string
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, concurrency)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return clients, failures
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Since(base)
			conn, resp, err := dialer.DialContext(ctx, wsURL, nil)
			if err != nil {
				if resp != nil {
					err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
				}
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			c := &client{id: i, conn: conn, dialStart: start, handshake: time.Since(base) - start, done: make(chan struct{})}
			go c.read(cache, base)
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.SortFunc(clients, func(a, b *client) int { return a.id - b.id })
	return clients, failures
}

// read reads every message and keeps the latest result of each statistic.
func (c *client) read(cache *msgCache, base time.Time) {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		typ, rd, err := c.conn.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
			}
			return
		}
		at := time.Since(base)
		var p *parsed
		if typ == websocket.TextMessage {
			p = cache.get(buf.Bytes())
		} else {
			p = &parsed{err: fmt.Errorf("binary message")}
		}
		c.mu.Lock()
		c.bytes += int64(buf.Len())
		switch {
		case p.err != nil:
			c.protoError(p.err.Error())
		case c.latest == nil && p.typ != "snapshot":
			c.protoError("first message is not a snapshot")
		case c.latest == nil:
			c.latest = maps.Clone(p.stats) // p is shared: never write to it
			c.snapshotAt = at
		case p.typ != "update":
			c.protoError("a second snapshot")
		default:
			maps.Copy(c.latest, p.stats)
			c.updates++
			if p.hasCount {
				c.samples = append(c.samples, sample{p.count, at})
			}
		}
		c.mu.Unlock()
	}
}

func (c *client) protoError(s string) {
	if c.protoErr == "" {
		c.protoErr = s
	}
}

func waitSnapshots(ctx context.Context, clients []*client, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, c := range clients {
		for ctx.Err() == nil && time.Now().Before(deadline) {
			c.mu.Lock()
			ok := c.latest != nil || c.err != nil
			c.mu.Unlock()
			if ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// received returns the update messages and bytes (snapshots included) the
// clients have received so far.
func received(clients []*client) (updates int, bytes int64) {
	for _, c := range clients {
		c.mu.Lock()
		updates += c.updates
		bytes += c.bytes
		c.mu.Unlock()
	}
	return updates, bytes
}

// closeAll closes every client with 1000 and waits for the server's answer
// (bounded); it may be called more than once.
func closeAll(clients []*client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c.closing.Swap(true) {
			continue
		}
		wg.Go(func() {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "wsload done")
			if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(2*time.Second)); err == nil {
				select {
				case <-c.done:
				case <-time.After(3 * time.Second):
				}
			}
			_ = c.conn.Close()
			<-c.done
		})
	}
	wg.Wait()
}

// compareAll counts the clients whose every statistic is byte-equal to rest,
// and describes the first few that are not.
func compareAll(clients []*client, rest map[string][]byte) (equal int, mismatches []string) {
	for _, c := range clients {
		c.mu.Lock()
		why := diff(c.latest, rest)
		if why == "" && c.err != nil {
			why = "connection dropped: " + c.err.Error()
		}
		c.mu.Unlock()
		if why == "" {
			equal++
		} else if len(mismatches) < 5 {
			mismatches = append(mismatches, fmt.Sprintf("client %d: %s", c.id, why))
		}
	}
	return equal, mismatches
}

// diff returns "" if got holds exactly the statistics of want, byte-equal.
func diff(got, want map[string][]byte) string {
	if got == nil {
		return "no snapshot received"
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[name]
		if !ok {
			return fmt.Sprintf("%s missing", name)
		}
		if !bytes.Equal(g, want[name]) {
			return fmt.Sprintf("%s = %s, REST has %s", name, clip(g), clip(want[name]))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			return fmt.Sprintf("%s not served by REST", name)
		}
	}
	return ""
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// ---------------------------------------------------------------- REST

type probe struct {
	base   time.Time
	mu     sync.Mutex
	first  map[int64]time.Duration // count value → send time of the first GET that saw it
	polls  int
	errors int
	lastEr string
	rtts   []time.Duration // per GET
	gaps   []time.Duration // between consecutive sends: how late T0 may be

	lastSent time.Duration
}

func newProbe(base time.Time) *probe { return &probe{base: base, first: map[int64]time.Duration{}} }

func (p *probe) run(ctx context.Context, url string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		sent := time.Since(p.base)
		n, err := getCount(ctx, hc, url)
		rtt := time.Since(p.base) - sent
		p.mu.Lock()
		if p.polls > 0 {
			p.gaps = append(p.gaps, sent-p.lastSent)
		}
		p.lastSent = sent
		p.rtts = append(p.rtts, rtt)
		p.polls++
		if err != nil {
			if ctx.Err() == nil {
				p.errors++
				p.lastEr = err.Error()
			}
		} else if _, ok := p.first[n]; !ok {
			p.first[n] = sent
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func getCount(ctx context.Context, hc *http.Client, url string) (int64, error) {
	b, err := get(ctx, hc, url)
	if err != nil {
		return 0, err
	}
	n, ok := parseCount(b)
	if !ok {
		return 0, fmt.Errorf("unexpected count result %s", clip(b))
	}
	return n, nil
}

func get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %s", url, resp.Status, clip(b))
	}
	return b, nil
}

func waitReady(ctx context.Context, hc *http.Client, baseURL string, p *pipeline, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if _, last = get(ctx, hc, baseURL+"/readyz"); last == nil {
			return nil
		}
		var exited <-chan struct{}
		if p != nil {
			exited = p.allDone
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("the pipeline exited before it was ready: %v; its log:\n%s", p.allErr, tail(p.allLog, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s/readyz not 200 after %v: %v", baseURL, timeout, last)
}

func waitCount(ctx context.Context, hc *http.Client, baseURL string, atLeast int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := getCount(ctx, hc, baseURL+"/api/stats/count")
		if err == nil && n >= atLeast {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("count did not reach %d within %v (last: %d, %v)", atLeast, timeout, n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitQuiet polls /api/stats until it stays the same for quietFor and
// returns it, compacted per statistic.
func waitQuiet(ctx context.Context, hc *http.Client, baseURL string, timeout time.Duration) (map[string][]byte, error) {
	deadline := time.Now().Add(timeout)
	var last []byte
	var since time.Time
	for {
		b, err := get(ctx, hc, baseURL+"/api/stats")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(b, last) {
			last, since = b, time.Now()
		} else if time.Since(since) >= quietFor {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("/api/stats still changing after %v: the feed is running (stop it, or pass --no-check)", timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(last, &raw); err != nil {
		return nil, fmt.Errorf("/api/stats: %w", err)
	}
	rest := make(map[string][]byte, len(raw))
	for name, v := range raw {
		c, err := compact(v)
		if err != nil {
			return nil, fmt.Errorf("/api/stats %s: %w", name, err)
		}
		rest[name] = c
	}
	return rest, nil
}

// ---------------------------------------------------------------- pipeline

type pipeline struct {
	root, tmp, bin string
	addr           string
	brokerPort     int
	rate           float64
	logf           func(string, ...any)

	all            *exec.Cmd
	allCmd, allLog string
	allDone        chan struct{}
	allErr         error
	feed           *exec.Cmd
	feedCmd        string
	feedLog        string
	feedDone       chan struct{}
	feedErr        error
	stopped        bool
}

// startPipeline builds picstats and starts "picstats all" in its own process
// group. The returned pipeline, if not nil, must be stopped.
func startPipeline(ctx context.Context, rate float64, logf func(string, ...any)) (*pipeline, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return nil, fmt.Errorf("run from inside the picstats module (go env GOMOD: %q, %v)", gomod, err)
	}
	p := &pipeline{root: filepath.Dir(gomod), rate: rate, logf: logf}
	if p.tmp, err = os.MkdirTemp("", "wsload-"); err != nil {
		return nil, err
	}
	p.bin = filepath.Join(p.tmp, "picstats")
	logf("building: (cd %s && go build -o %s .)", p.root, p.bin)
	build := exec.CommandContext(ctx, "go", "build", "-o", p.bin, ".")
	build.Dir, build.Stdout, build.Stderr = p.root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		_ = os.RemoveAll(p.tmp)
		return nil, fmt.Errorf("go build: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return p, err
	}
	p.addr, p.brokerPort = fmt.Sprintf("127.0.0.1:%d", ports[0]), ports[1]
	args := []string{"--rate", fmtRate(rate), "--count", "1", "--addr", p.addr, "--embedded-port", strconv.Itoa(p.brokerPort)}
	p.allLog = filepath.Join(p.tmp, "picstats.log")
	p.all, p.allDone, err = p.start(args, p.allLog, &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}, &p.allErr)
	p.allCmd = "picstats " + strings.Join(args, " ")
	if err != nil {
		return p, err
	}
	logf("started (pid %d, own process group): %s  [log %s]", p.all.Process.Pid, p.allCmd, p.allLog)
	return p, nil
}

// startFeed starts the datafeed in the pipeline's process group.
func (p *pipeline) startFeed(count int) error {
	args := []string{"datafeed", "--brokers", fmt.Sprintf("127.0.0.1:%d", p.brokerPort), "--rate", fmtRate(p.rate), "--count", strconv.Itoa(count)}
	p.feedCmd = "picstats " + strings.Join(args, " ")
	p.feedLog = filepath.Join(p.tmp, "datafeed.log")
	var err error
	p.feed, p.feedDone, err = p.start(args, p.feedLog,
		&syscall.SysProcAttr{Setpgid: true, Pgid: p.all.Process.Pid, Pdeathsig: syscall.SIGKILL}, &p.feedErr)
	if err != nil {
		return err
	}
	p.logf("started (pid %d, same process group): %s  [log %s]", p.feed.Process.Pid, p.feedCmd, p.feedLog)
	return nil
}

func (p *pipeline) start(args []string, logPath string, attr *syscall.SysProcAttr, errp *error) (*exec.Cmd, chan struct{}, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(p.bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = p.root, logFile, logFile, attr
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, nil, fmt.Errorf("start %s: %w", p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		*errp = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	return cmd, done, nil
}

// stop sends SIGTERM to the process group, and SIGKILL if it has not exited
// after 10 s.
func (p *pipeline) stop() error {
	if p.all == nil || p.stopped {
		return nil
	}
	p.stopped = true
	pgid := p.all.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	exited := func() bool {
		t := time.After(10 * time.Second)
		for _, d := range []chan struct{}{p.allDone, p.feedDone} {
			if d == nil {
				continue
			}
			select {
			case <-d:
			case <-t:
				return false
			}
		}
		return true
	}
	if exited() {
		p.logf("pipeline stopped (process group %d)", pgid)
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.allDone
	if p.feedDone != nil {
		<-p.feedDone
	}
	return fmt.Errorf("process group %d ignored SIGTERM for 10 s: killed", pgid)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close() // held until all are chosen, so they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ---------------------------------------------------------------- the system

type nofile struct {
	soft, hard uint64
	tooLow     bool
	text       string
}

// raiseNoFile raises RLIMIT_NOFILE's soft limit to the hard one, for this
// process and the pipeline it starts (children inherit it).
func raiseNoFile(clients int) nofile {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nofile{text: "RLIMIT_NOFILE: " + err.Error()}
	}
	old := rl.Cur
	rl.Cur = rl.Max
	err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	need := uint64(clients) + 256 // the API holds one socket per client too, plus broker and HTTP connections
	n := nofile{soft: rl.Cur, hard: rl.Max, tooLow: rl.Cur < need}
	n.text = fmt.Sprintf("RLIMIT_NOFILE soft %d → %d (hard %d); %d clients need about %d per process", old, rl.Cur, rl.Max, clients, need)
	if err != nil {
		n.text += fmt.Sprintf("; setrlimit: %v", err)
	}
	if n.tooLow {
		n.text += fmt.Sprintf(" — TOO LOW: expect connect failures (raise the hard limit: ulimit -Hn %d, or as root)", need)
	}
	return n
}

type procSample struct {
	ok       bool
	cpu      time.Duration // user + system
	rssKB    int64
	hwmKB    int64 // peak RSS
	threads  int64
	fds      int
	takenAt  time.Time
	pidState string
}

var clkTck = clockTicks()

// clockTicks reads AT_CLKTCK from the auxiliary vector; 100 if unreadable.
func clockTicks() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err == nil && strconv.IntSize == 64 {
		for i := 0; i+16 <= len(b); i += 16 {
			if binary.NativeEndian.Uint64(b[i:]) == 17 { // AT_CLKTCK
				if v := int64(binary.NativeEndian.Uint64(b[i+8:])); v > 0 {
					return v
				}
			}
		}
	}
	return 100
}

func readProc(pid int) (procSample, error) {
	s := procSample{takenAt: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("unexpected /proc/pid/stat")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return s, errors.New("short /proc/pid/stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration((utime + stime) * int64(time.Second) / clkTck)
	s.pidState = f[0]
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		num, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rssKB = num
		case "VmHWM":
			s.hwmKB = num
		case "Threads":
			s.threads = num
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	s.ok = true
	return s, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readLoadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func commandLine() string {
	name := os.Args[0]
	if strings.Contains(name, "go-build") { // go run
		name = "go run ./bench/wsload"
	}
	return strings.Join(append([]string{name}, os.Args[1:]...), " ")
}

// ---------------------------------------------------------------- report

type report struct {
	cfg      config
	cmdline  string
	loadavg  string
	nofile   nofile
	children []string

	clients         []*client
	connectFailures []string
	connectWall     time.Duration

	flow             time.Duration
	updatesAtFlowEnd int
	bytesAtFlowEnd   int64
	selfCPU          time.Duration
	apiPID           int
	apiFlowCPU       time.Duration
	proc             []phaseProc
	probe            *probe

	checked      bool
	checkErr     error
	restStats    int
	equal        int
	mismatches   []string
	convergeWait time.Duration

	// summarize
	handshakes, toSnapshot []time.Duration
	updates                []int
	totalUpdates           int
	latencies              []time.Duration
	unmatched              int
	negative               int
	negValues              map[int64]int // count value → negative samples
	drops                  []string
	protoErrs              []string
	distinct               int64
}

func (r *report) summarize(cache *msgCache) {
	r.probe.mu.Lock()
	defer r.probe.mu.Unlock()
	r.distinct = cache.n.Load()
	r.negValues = map[int64]int{}
	slices.Sort(r.probe.rtts)
	slices.Sort(r.probe.gaps)
	for _, c := range r.clients {
		c.mu.Lock()
		r.handshakes = append(r.handshakes, c.handshake)
		if c.snapshotAt > 0 {
			r.toSnapshot = append(r.toSnapshot, c.snapshotAt-c.dialStart)
		}
		r.updates = append(r.updates, c.updates)
		r.totalUpdates += c.updates
		for _, s := range c.samples {
			t0, ok := r.probe.first[s.count]
			if !ok {
				r.unmatched++
				continue
			}
			l := s.at - t0
			if l < 0 {
				r.negative++
				r.negValues[s.count]++
			}
			r.latencies = append(r.latencies, l)
		}
		if c.err != nil {
			r.drops = append(r.drops, fmt.Sprintf("client %d: %v", c.id, c.err))
		}
		if c.protoErr != "" {
			r.protoErrs = append(r.protoErrs, fmt.Sprintf("client %d: %s", c.id, c.protoErr))
		}
		c.mu.Unlock()
	}
	slices.Sort(r.handshakes)
	slices.Sort(r.toSnapshot)
	slices.Sort(r.updates)
	slices.Sort(r.latencies)
}

func (r *report) ok() bool {
	return len(r.connectFailures) == 0 && len(r.drops) == 0 && len(r.protoErrs) == 0 &&
		(r.cfg.noCheck || (r.checked && r.equal == len(r.clients) && len(r.clients) == r.cfg.clients))
}

func pct[T any](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1 // nearest rank
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) print(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("")
	p("== wsload report ==")
	p("command:      %s", r.cmdline)
	for _, c := range r.children {
		p("child:        %s", c)
	}
	p("machine:      %d CPUs, GOMAXPROCS %d, %s %s/%s, load avg at start %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, r.loadavg)
	p("fd limit:     %s", r.nofile.text)
	p("")
	p("-- connect (%d clients, %d handshakes at a time)", r.cfg.clients, r.cfg.dialConcurrency)
	p("connected:    %d, failed %d, in %v", len(r.clients), len(r.connectFailures), r.connectWall.Round(time.Millisecond))
	for _, f := range firstN(countReasons(r.connectFailures), 3) {
		p("  failure:    %s", f)
	}
	p("handshake:    p50 %s  p99 %s  max %s", ms(pct(r.handshakes, .5)), ms(pct(r.handshakes, .99)), ms(pct(r.handshakes, 1)))
	p("to snapshot:  p50 %s  p99 %s  max %s  (dial start → snapshot read; %d of %d got one)", ms(pct(r.toSnapshot, .5)), ms(pct(r.toSnapshot, .99)), ms(pct(r.toSnapshot, 1)), len(r.toSnapshot), len(r.clients))
	p("")
	p("-- updates (%v of flow)", r.flow.Round(time.Millisecond))
	secs := r.flow.Seconds()
	p("per client:   min %d  median %d  max %d update messages (after the snapshot, to the end of the check)", pct(r.updates, 0), pct(r.updates, .5), pct(r.updates, 1))
	p("total:        %d update messages during the flow: %.0f messages/s, %.1f MB/s (all bytes incl. snapshots / flow time); %d by the end of the check",
		r.updatesAtFlowEnd, float64(r.updatesAtFlowEnd)/secs, float64(r.bytesAtFlowEnd)/secs/1e6, r.totalUpdates)
	p("distinct:     %d distinct messages decoded (decoded once, shared by the clients that got the same bytes)", r.distinct)
	p("")
	p("-- push latency: T1 (client finished reading an update carrying count=N) − T0 (send time of the first")
	p("   GET /api/stats/count, polled every %v, that returned N); one sample per (client, N)", probeInterval)
	if r.probe != nil {
		p("probe:        %d polls, %d errors, %d count values seen%s", r.probe.polls, r.probe.errors, len(r.probe.first), ifStr(r.probe.lastEr != "", "; last error: "+r.probe.lastEr))
		p("              GET p50 %s p99 %s max %s; gap between GETs p50 %s p99 %s max %s (T0 is late by up to one gap)",
			ms(pct(r.probe.rtts, .5)), ms(pct(r.probe.rtts, .99)), ms(pct(r.probe.rtts, 1)),
			ms(pct(r.probe.gaps, .5)), ms(pct(r.probe.gaps, .99)), ms(pct(r.probe.gaps, 1)))
	}
	p("latency:      p50 %s  p90 %s  p99 %s  max %s  (N=%d samples; min %s, %d negative, %d values the probe never saw)",
		ms(pct(r.latencies, .5)), ms(pct(r.latencies, .9)), ms(pct(r.latencies, .99)), ms(pct(r.latencies, 1)),
		len(r.latencies), ms(pct(r.latencies, 0)), r.negative, r.unmatched)
	if r.negative > 0 {
		vals := slices.Sorted(maps.Keys(r.negValues))
		var parts []string
		for _, v := range firstN64(vals, 5) {
			parts = append(parts, fmt.Sprintf("count=%d: %d", v, r.negValues[v]))
		}
		p("negative:     %d samples over %d count values (%s%s)", r.negative, len(vals), strings.Join(parts, ", "), ifStr(len(vals) > 5, ", …"))
	}
	p("")
	p("-- resources (%v flow)", r.flow.Round(time.Millisecond))
	p("wsload:       %.2f s CPU during the flow (%.0f%% of one core)", r.selfCPU.Seconds(), 100*r.selfCPU.Seconds()/secs)
	if r.apiPID != 0 {
		p("API process:  pid %d (broker + processor + API%s)", r.apiPID, ifStr(len(r.children) > 1, "; the datafeed runs in its own process"))
		for _, s := range r.proc {
			p("  %-18s CPU %7.2f s  RSS %4d MB  peak RSS %4d MB  threads %3d  fds %5d", s.name+":", s.s.cpu.Seconds(), s.s.rssKB/1024, s.s.hwmKB/1024, s.s.threads, s.s.fds)
		}
		if r.apiFlowCPU > 0 {
			p("  during the flow: %.2f s CPU (%.0f%% of one core)", r.apiFlowCPU.Seconds(), 100*r.apiFlowCPU.Seconds()/secs)
		}
	}
	p("")
	p("-- convergence")
	switch {
	case r.cfg.noCheck:
		p("check:        skipped (--no-check)")
	case !r.checked:
		p("check:        NOT DONE: %v", r.checkErr)
	default:
		p("check:        %d/%d clients had every statistic (%d) byte-equal to GET /api/stats (after json.Compact),", r.equal, len(r.clients), r.restStats)
		p("              REST read once it had stayed unchanged for %v; clients matched it %v after that read", quietFor, r.convergeWait.Round(time.Millisecond))
		for _, m := range r.mismatches {
			p("  differs:    %s", m)
		}
	}
	p("dropped:      %d connections closed before the end", len(r.drops))
	for _, d := range firstN(r.drops, 5) {
		p("  drop:       %s", d)
	}
	p("protocol:     %d clients got an unexpected message", len(r.protoErrs))
	for _, e := range firstN(r.protoErrs, 5) {
		p("  error:      %s", e)
	}
	p("")
	if r.ok() {
		p("RESULT: PASS")
	} else {
		p("RESULT: FAIL (exit status 1)")
	}
}

func countReasons(errs []string) []string {
	n := map[string]int{}
	for _, e := range errs {
		n[e]++
	}
	out := make([]string, 0, len(n))
	for _, e := range slices.Sorted(maps.Keys(n)) {
		out = append(out, fmt.Sprintf("%d× %s", n[e], e))
	}
	return out
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

func firstN64(s []int64, n int) []int64 { return s[:min(n, len(s))] }

func ifStr(c bool, s string) string {
	if c {
		return s
	}
	return ""
}
