package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// phaseProc is the API process's /proc sample at one phase of the run.
type phaseProc struct {
	name string
	s    benchkit.ProcSample
}

// report is what the run measured, and its summary for printing.
type report struct {
	cfg      config
	cmdline  string
	machine  string // at the start
	nofile   string
	children []string
	cache    *msgCache

	connectFailures []string
	connectWall     time.Duration

	flow             time.Duration
	updatesAtFlowEnd int
	bytesAtFlowEnd   int64
	selfCPU          time.Duration
	apiPID           int
	apiFlowCPU       time.Duration
	proc             []phaseProc

	checked      bool
	checkErr     error
	restStats    int
	equal        int
	mismatches   []string
	convergeWait time.Duration

	// summarize
	clients                int
	probe                  *probe
	handshakes, toSnapshot []time.Duration
	updates                []int
	totalUpdates           int
	latencies              []time.Duration
	unmatched, negative    int
	drops, protoErrs       []string
}

func (r *report) lastSample() benchkit.ProcSample {
	if len(r.proc) == 0 {
		return benchkit.ProcSample{}
	}
	return r.proc[len(r.proc)-1].s
}

// summarize collects the clients' figures and pairs their samples with the
// probe's first sightings.
func (r *report) summarize(clients []*client, pr *probe) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	r.clients, r.probe = len(clients), pr
	slices.Sort(pr.rtts)
	slices.Sort(pr.gaps)
	for _, c := range clients {
		c.mu.Lock()
		r.handshakes = append(r.handshakes, c.handshake)
		if c.snapshotAt > 0 {
			r.toSnapshot = append(r.toSnapshot, c.snapshotAt-c.dialStart)
		}
		r.updates = append(r.updates, c.updates)
		r.totalUpdates += c.updates
		for _, s := range c.samples {
			if t0, ok := pr.first[s.count]; !ok {
				r.unmatched++
			} else {
				r.latencies = append(r.latencies, s.at-t0)
				if s.at < t0 {
					r.negative++
				}
			}
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
		(r.cfg.noCheck || (r.checked && r.equal == r.clients && r.clients == r.cfg.clients))
}

// pcts formats quantiles of sorted durations, "p50 1.0 ms  max 2.0 ms".
func pcts(d []time.Duration, qs ...float64) string {
	var s string
	for _, q := range qs {
		name := fmt.Sprintf("p%g", q*100)
		if q == 1 {
			name = "max"
		}
		s += name + " " + ms(benchkit.Rank(d, q)) + "  "
	}
	return s[:len(s)-2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) print(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("\n== wsload report ==")
	p("command:      %s", r.cmdline)
	for _, c := range r.children {
		p("child:        %s", c)
	}
	p("machine:      %s", r.machine)
	p("fd limit:     %s", r.nofile)
	p("\n-- connect (%d clients, %d handshakes at a time)", r.cfg.clients, r.cfg.dialConcurrency)
	p("connected:    %d, failed %d, in %v", r.clients, len(r.connectFailures), r.connectWall.Round(time.Millisecond))
	for _, f := range firstN(countReasons(r.connectFailures), 3) {
		p("  failure:    %s", f)
	}
	p("handshake:    %s", pcts(r.handshakes, .5, .99, 1))
	p("to snapshot:  %s  (dial start → snapshot read; %d of %d got one)", pcts(r.toSnapshot, .5, .99, 1), len(r.toSnapshot), r.clients)
	secs := r.flow.Seconds()
	p("\n-- updates (%v of flow)", r.flow.Round(time.Millisecond))
	p("per client:   min %d  median %d  max %d update messages (after the snapshot, to the end of the check)",
		benchkit.Rank(r.updates, 0), benchkit.Rank(r.updates, .5), benchkit.Rank(r.updates, 1))
	p("total:        %d update messages during the flow: %.0f messages/s, %.1f MB/s (all bytes incl. snapshots / flow time); %d by the end of the check",
		r.updatesAtFlowEnd, float64(r.updatesAtFlowEnd)/secs, float64(r.bytesAtFlowEnd)/secs/1e6, r.totalUpdates)
	p("distinct:     %d distinct messages decoded (decoded once, shared by the clients that got the same bytes)", r.cache.n.Load())
	r.printLatency(p)
	r.printResources(p)
	r.printChecks(p)
}

func (r *report) printLatency(p func(string, ...any)) {
	p("\n-- push latency: T1 (client finished reading an update carrying count=N) − T0 (send time of the first")
	p("   GET /api/stats/count, polled every %v, that returned N); one sample per (client, N)", probeInterval)
	p("probe:        %d polls, %d errors, %d count values seen; last error: %q", r.probe.polls, r.probe.errors, len(r.probe.first), r.probe.lastEr)
	p("              GET %s; gap between GETs %s (T0 is late by up to one gap)", pcts(r.probe.rtts, .5, .99, 1), pcts(r.probe.gaps, .5, .99, 1))
	p("latency:      %s  (N=%d samples; min %s, %d negative, %d values the probe never saw)",
		pcts(r.latencies, .5, .9, .99, 1), len(r.latencies), ms(benchkit.Rank(r.latencies, 0)), r.negative, r.unmatched)
}

func (r *report) printResources(p func(string, ...any)) {
	secs := r.flow.Seconds()
	p("\n-- resources (%v flow)", r.flow.Round(time.Millisecond))
	p("wsload:       %.2f s CPU during the flow (%.0f%% of one core)", r.selfCPU.Seconds(), 100*r.selfCPU.Seconds()/secs)
	if r.apiPID == 0 {
		return
	}
	p("API process:  pid %d (broker + processor + API when wsload runs it; the datafeed runs in its own process)", r.apiPID)
	for _, s := range r.proc {
		p("  %-18s CPU %7.2f s  RSS %4d MB  peak RSS %4d MB  threads %3d  fds %5d", s.name+":", s.s.CPU.Seconds(), s.s.RSSKB/1024, s.s.HWMKB/1024, s.s.Threads, s.s.FDs)
	}
	if r.apiFlowCPU > 0 {
		p("  during the flow: %.2f s CPU (%.0f%% of one core)", r.apiFlowCPU.Seconds(), 100*r.apiFlowCPU.Seconds()/secs)
	}
}

func (r *report) printChecks(p func(string, ...any)) {
	p("\n-- convergence")
	switch {
	case r.cfg.noCheck:
		p("check:        skipped (--no-check)")
	case !r.checked:
		p("check:        NOT DONE: %v", r.checkErr)
	default:
		p("check:        %d/%d clients had every statistic (%d) byte-equal to GET /api/stats (after json.Compact),", r.equal, r.clients, r.restStats)
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
	if r.ok() {
		p("\nRESULT: PASS")
	} else {
		p("\nRESULT: FAIL (exit status 1)")
	}
}

func countReasons(errs []string) []string {
	n := map[string]int{}
	for _, e := range errs {
		n[e]++
	}
	var out []string
	for _, e := range slices.Sorted(maps.Keys(n)) {
		out = append(out, fmt.Sprintf("%d× %s", n[e], e))
	}
	return out
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }
