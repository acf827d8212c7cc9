package e2e

// The soak test's machinery: processes restarted like a restart policy
// would, the prober, the end-offset sampler and the judge (see TestSoak).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/cluster"
)

// soakProc runs one role of the binary, restarts it when it exits (at once
// after a SIGKILL of the test's, after a second when it exited on its own)
// and logs each run to a file.
type soakProc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	running  bool
	killing  bool // the test SIGKILLed it: restart at once
	stopping bool // no more restarts
	crashes  int
	exitErr  error // of the last run, once stopping
	wg       sync.WaitGroup
}

func newSoakProc(t *testing.T, bin, name, logs string, args []string) *soakProc {
	return &soakProc{t: t, name: name, bin: bin, args: args, log: filepath.Join(logs, name+".log")}
}

func (p *soakProc) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.startLocked()
}

func (p *soakProc) startLocked() {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Errorf("%s: %v", p.name, err)
		return
	}
	fmt.Fprintf(logf, "=== %s: starting %s\n", time.Now().UTC().Format("15:04:05.000"), p.name)
	cmd := dieWithTest(exec.Command(p.bin, p.args...))
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Errorf("%s: %v", p.name, err)
		return
	}
	p.cmd, p.running = cmd, true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := cmd.Wait()
		last := lastLine(p.log) // the process's own last word
		fmt.Fprintf(logf, "=== %s: %s exited: %v\n", time.Now().UTC().Format("15:04:05.000"), p.name, err)
		logf.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.running = false
		if p.stopping {
			p.exitErr = err
			return
		}
		if p.killing {
			p.killing = false
		} else {
			p.crashes++
			p.t.Logf("%s exited on its own (%v): %s", p.name, err, last)
			p.mu.Unlock()
			time.Sleep(time.Second) // a restart policy's back-off
			p.mu.Lock()
			if p.stopping {
				return
			}
		}
		p.startLocked()
	}()
}

// sigkill kills the process; it is restarted at once.
func (p *soakProc) sigkill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.awaitRunning()
	p.killing = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
}

// awaitRunning waits, with p.mu held, until the process runs again after
// exiting on its own (for at most its back-off and a bit).
func (p *soakProc) awaitRunning() {
	for deadline := time.Now().Add(10 * time.Second); !p.running && time.Now().Before(deadline); {
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond) // polling interval
		p.mu.Lock()
	}
}

// pause stops the process with SIGSTOP for d, then resumes it.
func (p *soakProc) pause(d time.Duration) {
	p.mu.Lock()
	p.awaitRunning()
	proc := p.cmd.Process
	p.mu.Unlock()
	_ = proc.Signal(syscall.SIGSTOP)
	time.Sleep(d) // the fault's length, not synchronisation
	_ = proc.Signal(syscall.SIGCONT)
}

func (p *soakProc) crashCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes
}

// stop sends SIGTERM and waits up to timeout for the exit (SIGKILL then),
// and says how it went.
func (p *soakProc) stop(timeout time.Duration) string {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return "stopped already"
	}
	p.stopping = true
	proc := p.cmd.Process
	p.mu.Unlock()
	_ = proc.Signal(syscall.SIGCONT)
	_ = proc.Signal(syscall.SIGTERM)
	began := time.Now()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = proc.Signal(syscall.SIGKILL)
		<-done
		return fmt.Sprintf("no exit within %v of SIGTERM (killed)", timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exitErr != nil {
		return fmt.Sprintf("%v after %v", p.exitErr, time.Since(began).Round(time.Millisecond))
	}
	return fmt.Sprintf("exit 0 after %v", time.Since(began).Round(time.Millisecond))
}

// kill ends the process for good, whatever its state (test cleanup).
func (p *soakProc) kill() {
	p.mu.Lock()
	p.stopping = true
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

const (
	routeStats  = "/api/stats"
	routeReadyz = "/readyz"
)

// probe is one request of the prober.
type probe struct {
	route   string
	sent    time.Time
	took    time.Duration // to the last byte of the answer, or to the error
	status  int           // 0: no answer
	down    bool          // connection refused or cut: the API process is down
	timeout bool
	err     error
	hasPos  bool
	pos     int64  // Picstats-View-Position
	lag     string // Picstats-View-Lag
	age     string // Picstats-Data-Age
	body    string // /readyz: the status in the body
}

func (p probe) String() string {
	s := fmt.Sprintf("%s sent %s took %v", p.route, p.sent.UTC().Format("15:04:05.000"), p.took.Round(time.Millisecond))
	if p.status == 0 {
		return fmt.Sprintf("%s: %v", s, p.err)
	}
	return fmt.Sprintf("%s: %d %s, position %d (header: %v), lag %q, data age %q", s, p.status, p.body, p.pos, p.hasPos, p.lag, p.age)
}

// prober asks both routes every soakProbeEvery until stopped.
type prober struct {
	began    time.Time
	stopOnce sync.Once
	quit     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	probes   []probe
}

func startProber(url string) *prober {
	client := &http.Client{
		Timeout: soakClientWait,
		// A fresh connection per request: a refused one says the API is
		// down, and no pooled connection to a killed process is reused.
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	p := &prober{began: time.Now(), quit: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(soakProbeEvery)
		defer tick.Stop()
		for {
			for _, route := range []string{routeStats, routeReadyz} {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					r := probeOnce(client, url, route)
					p.mu.Lock()
					p.probes = append(p.probes, r)
					p.mu.Unlock()
				}()
			}
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func probeOnce(client *http.Client, url, route string) probe {
	r := probe{route: route, sent: time.Now()}
	resp, err := client.Get(url + route)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	r.took = time.Since(r.sent)
	if resp != nil {
		r.status = resp.StatusCode
		h := resp.Header
		if v := h.Get("Picstats-View-Position"); v != "" {
			r.pos, r.hasPos = parseInt(v)
		}
		r.lag, r.age = h.Get("Picstats-View-Lag"), h.Get("Picstats-Data-Age")
	}
	if err != nil {
		r.err = err
		var netErr net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			r.down = true
		case errors.As(err, &netErr) && netErr.Timeout():
			r.timeout = true
		}
		r.status = 0 // an answer cut short is no answer
		return r
	}
	if route == routeReadyz {
		var v struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(body, &v) == nil {
			r.body = v.Status
		}
	}
	return r
}

func parseInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (p *prober) stop() {
	p.stopOnce.Do(func() { close(p.quit); p.wg.Wait() })
}

// records returns the probes of one route or of all, in the order sent.
func (p *prober) records() []probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.probes)
	sort.SliceStable(out, func(i, j int) bool { return out[i].sent.Before(out[j].sent) })
	return out
}

// endSample is one sample of the table's end offsets.
type endSample struct {
	sent, got time.Time
	ok        bool
	sum       int64 // E: the sum over the partitions, if ok
	refused   bool  // a dial of the broker just before was refused
	err       error
}

// sampler records the table topic's end offsets every soakProbeEvery.
type sampler struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	samples  []endSample
}

func startSampler(t *testing.T, cfg cluster.Config) *sampler {
	t.Helper()
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	topic := string(cfg.Names.Table())
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer cl.Close()
		tick := time.NewTicker(soakProbeEvery)
		defer tick.Stop()
		for {
			var e endSample
			conn, err := net.DialTimeout("tcp", cfg.Brokers[0], soakProbeEvery)
			if err == nil {
				conn.Close()
			}
			e.refused = refused(err)
			e.sent = time.Now()
			if e.refused { // keep the pace while the broker is down
				e.got, e.err = e.sent, err
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				ends, err := adm.ListEndOffsets(ctx, topic)
				cancel()
				e.got = time.Now()
				if err == nil {
					err = ends.Error()
				}
				if err == nil && len(ends[topic]) != cfg.Partitions {
					err = fmt.Errorf("%d partitions listed, want %d", len(ends[topic]), cfg.Partitions)
				}
				if err == nil {
					e.ok = true
					ends.Each(func(o kadm.ListedOffset) { e.sum += o.Offset })
				}
				e.err = err
			}
			s.mu.Lock()
			s.samples = append(s.samples, e)
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() {
	s.stopOnce.Do(func() { close(s.quit); <-s.done })
}

func (s *sampler) records() []endSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// routeCounts is what the table shows for one route.
type routeCounts struct {
	requests, ok, unavailable, other, down, timeouts, slow int
	took                                                   []time.Duration
	slowest                                                []string
}

func (c *routeCounts) quantile(q float64) time.Duration {
	if len(c.took) == 0 {
		return 0
	}
	i := int(float64(len(c.took))*q+0.999999) - 1 // nearest rank
	return c.took[min(max(i, 0), len(c.took)-1)]
}

// soakJudgement is the judge's account of a soak run (see TestSoak).
type soakJudgement struct {
	routes                          map[string]*routeCounts
	ready, notReady, unjudgeable    int
	firstUnjudgeable                string
	bodyStatus                      map[string]int
	mismatchA, mismatchB, mismatchC []string
	judgedB, judgedC                int
	samples, samplesFailed, refused int
}

// span is a stretch of time, such as a broker restart.
type span struct{ from, to time.Time }

func judgeSoak(probes []probe, samples []endSample, restarts []span, began time.Time) *soakJudgement {
	j := &soakJudgement{routes: map[string]*routeCounts{routeStats: {}, routeReadyz: {}}, bodyStatus: map[string]int{}}
	var ready []probe // /readyz answers, in the order sent
	for _, p := range probes {
		c := j.routes[p.route]
		c.requests++
		c.took = append(c.took, p.took)
		if p.took > soakMaxWait && len(c.slowest) < 10 {
			c.slowest = append(c.slowest, p.String())
		}
		if p.took > soakMaxWait {
			c.slow++
		}
		switch {
		case p.status == http.StatusOK:
			c.ok++
		case p.status == http.StatusServiceUnavailable:
			c.unavailable++
		case p.status != 0:
			c.other++
		case p.down:
			c.down++
		case p.timeout:
			c.timeouts++
		default:
			c.other++
		}
		if p.route != routeReadyz || p.status == 0 {
			continue
		}
		if (p.status != http.StatusOK && p.status != http.StatusServiceUnavailable) || !p.hasPos {
			if j.unjudgeable == 0 {
				j.firstUnjudgeable = p.String()
			}
			j.unjudgeable++
			continue
		}
		ready = append(ready, p)
		j.bodyStatus[p.body]++
		if p.status == http.StatusOK {
			j.ready++
		} else {
			j.notReady++
		}
	}
	for _, c := range j.routes {
		slices.Sort(c.took)
	}
	for _, s := range samples {
		j.samples++
		if !s.ok {
			j.samplesFailed++
		}
		if s.refused {
			j.refused++
		}
	}

	// answeredBy: the newest good sample whose answer came at or before x.
	answeredBy := func(x time.Time) (endSample, bool) {
		i := sort.Search(len(samples), func(i int) bool { return samples[i].got.After(x) })
		for i--; i >= 0; i-- {
			if samples[i].ok {
				return samples[i], true
			}
		}
		return endSample{}, false
	}
	// sentBy: the newest sample sent at or before x, good or not.
	sentBy := func(x time.Time) (endSample, bool) {
		i := sort.Search(len(samples), func(i int) bool { return samples[i].sent.After(x) })
		if i == 0 {
			return endSample{}, false
		}
		return samples[i-1], true
	}
	// samplesIn: the samples sent in [from, to].
	samplesIn := func(from, to time.Time) []endSample {
		i := sort.Search(len(samples), func(i int) bool { return !samples[i].sent.Before(from) })
		k := sort.Search(len(samples), func(i int) bool { return samples[i].sent.After(to) })
		return samples[i:k]
	}
	// dense: times cover [from, to] with no gap over soakMaxGap.
	dense := func(times []time.Time, from, to time.Time) bool {
		prev := from
		for _, x := range times {
			if x.Sub(prev) > soakMaxGap {
				return false
			}
			prev = x
		}
		return to.Sub(prev) <= soakMaxGap
	}
	// allReadyz holds every /readyz probe, answered or not, for (b)'s
	// "every probe answered" condition.
	var allReadyz []probe
	for _, p := range probes {
		if p.route == routeReadyz {
			allReadyz = append(allReadyz, p)
		}
	}

	for _, p := range ready {
		t := p.sent
		// (c)
		in := samplesIn(t.Add(-soakStaleWindow), t)
		allRefused := len(in) > 0
		var times []time.Time
		for _, s := range in {
			allRefused = allRefused && s.refused
			times = append(times, s.sent)
		}
		if allRefused && dense(times, t.Add(-soakStaleWindow), t) {
			j.judgedC++
			if p.status == http.StatusOK {
				j.mismatchC = append(j.mismatchC, fmt.Sprintf("%v after probing began: %s; the broker refused %d connections since %s",
					t.Sub(began).Round(time.Millisecond), p, len(in), t.Add(-soakStaleWindow).UTC().Format("15:04:05.000")))
			}
		}
		switch p.status {
		case http.StatusOK:
			// (a)
			if s, ok := answeredBy(t.Add(-soakStaleWindow)); ok && p.pos < s.sum {
				j.mismatchA = append(j.mismatchA, fmt.Sprintf("%v after probing began: %s; E = %d at %s (answer of the newest sample 5 s before)",
					t.Sub(began).Round(time.Millisecond), p, s.sum, s.got.UTC().Format("15:04:05.000")))
			}
		case http.StatusServiceUnavailable:
			// (b)
			if t.Sub(began) < soakStaleWindow {
				continue
			}
			from := t.Add(-soakStaleWindow)
			in := samplesIn(from.Add(-soakCurrentLag-soakMaxGap), t)
			observed := len(in) > 0
			var times []time.Time
			for _, s := range in {
				observed = observed && s.ok
				times = append(times, s.sent)
			}
			observed = observed && dense(times, from.Add(-soakCurrentLag-soakMaxGap), t)
			for _, r := range restarts {
				observed = observed && (r.to.Before(from.Add(-soakCurrentLag-soakMaxGap)) || r.from.After(t))
			}
			lo := sort.Search(len(allReadyz), func(i int) bool { return !allReadyz[i].sent.Before(from) })
			hi := sort.Search(len(allReadyz), func(i int) bool { return allReadyz[i].sent.After(t) })
			window := allReadyz[lo:hi]
			times = times[:0]
			for _, q := range window {
				observed = observed && (q.status == http.StatusOK || q.status == http.StatusServiceUnavailable) && q.hasPos
				times = append(times, q.sent)
			}
			observed = observed && dense(times, from, t)
			if !observed {
				continue
			}
			j.judgedB++
			current := true
			for _, q := range window {
				s, ok := sentBy(q.sent.Add(-soakCurrentLag))
				current = current && ok && s.ok && q.pos >= s.sum
			}
			if current {
				s, _ := sentBy(t.Add(-soakCurrentLag))
				j.mismatchB = append(j.mismatchB, fmt.Sprintf("%v after probing began: %s; E = %d sent %s; the %d probes since %s were all current",
					t.Sub(began).Round(time.Millisecond), p, s.sum, s.sent.UTC().Format("15:04:05.000"), len(window), from.UTC().Format("15:04:05.000")))
			}
		}
	}
	return j
}

// writeSoakData writes the prober's and the sampler's records as CSV
// files into dir, for a closer look at a run.
func writeSoakData(dir string, probes []probe, samples []endSample) error {
	var b strings.Builder
	b.WriteString("sent_unix_ms,route,took_ms,status,down,timeout,position,lag,data_age,readyz_status,error\n")
	for _, p := range probes {
		pos := ""
		if p.hasPos {
			pos = strconv.FormatInt(p.pos, 10)
		}
		errText := ""
		if p.err != nil {
			errText = strconv.Quote(p.err.Error())
		}
		fmt.Fprintf(&b, "%d,%s,%.1f,%d,%v,%v,%s,%s,%s,%s,%s\n", p.sent.UnixMilli(), p.route, float64(p.took)/float64(time.Millisecond),
			p.status, p.down, p.timeout, pos, p.lag, p.age, p.body, errText)
	}
	if err := os.WriteFile(filepath.Join(dir, "probes.csv"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	b.Reset()
	b.WriteString("sent_unix_ms,got_unix_ms,ok,end_offsets_sum,broker_refused,error\n")
	for _, s := range samples {
		errText := ""
		if s.err != nil {
			errText = strconv.Quote(s.err.Error())
		}
		fmt.Fprintf(&b, "%d,%d,%v,%d,%v,%s\n", s.sent.UnixMilli(), s.got.UnixMilli(), s.ok, s.sum, s.refused, errText)
	}
	return os.WriteFile(filepath.Join(dir, "samples.csv"), []byte(b.String()), 0o644)
}

// awaitReady polls /readyz until it answers 200, up to timeout.
func awaitReady(url string, timeout time.Duration) bool {
	client := &http.Client{Timeout: 5 * time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) { // polling interval
		if resp, err := client.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// awaitTotal polls /api/stats until it shows want records in all.
func awaitTotal(url string, want int64, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) { // polling interval
		var s snapshot
		if status, err := getJSON(url+"/api/stats", &s); err == nil && status == http.StatusOK && s.Count.Registrations+s.Rejected.Total >= want {
			return true
		}
	}
	return false
}

// finalReadyz asks /readyz once.
func finalReadyz(url string) (int, string) {
	client := &http.Client{Timeout: soakClientWait}
	resp, err := client.Get(url + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// refused reports whether err is a refused connection.
func refused(err error) bool { return err != nil && errors.Is(err, syscall.ECONNREFUSED) }
