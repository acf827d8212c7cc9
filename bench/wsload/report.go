package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// report prints what the session measured and returns the exit status.
func (s *session) report(w io.Writer) int {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	var handshakes, latencies []time.Duration
	var updates []int
	var drops, bad []string
	negative, unmatched := 0, 0
	s.probe.mu.Lock()
	defer s.probe.mu.Unlock()
	each(s.clients, func(c *client) {
		handshakes, updates = append(handshakes, c.handshake), append(updates, c.updates)
		for _, x := range c.samples {
			t0, ok := s.probe.first[x.count]
			if !ok {
				unmatched++
				continue
			}
			if latencies = append(latencies, x.at-t0); x.at < t0 {
				negative++
			}
		}
		if c.err != nil {
			drops = append(drops, fmt.Sprintf("client %d: %v", c.id, c.err))
		}
		if c.bad != "" {
			bad = append(bad, fmt.Sprintf("client %d: %s", c.id, c.bad))
		}
	})
	for _, l := range [][]time.Duration{handshakes, latencies, s.probe.gaps} {
		slices.Sort(l)
	}
	slices.Sort(updates)

	p("\n== wsload report ==\ncommand:      %s", commandLine())
	for _, c := range s.p.cmds {
		p("child:        %s", c)
	}
	p("machine:      %s", s.machine)
	p("\n-- connect (%d clients, %d handshakes at a time)", s.cfg.clients, s.cfg.dialConcurrency)
	p("connected:    %d, failed %d, in %v; handshake %s", len(s.clients), len(s.failures), s.connectWall.Round(time.Millisecond), pcts(handshakes, .5, .99, 1))
	for _, f := range countReasons(s.failures) {
		p("  failure:    %s", f)
	}
	secs := s.flow.Seconds()
	p("\n-- updates (%v of flow)", s.flow.Round(time.Millisecond))
	p("per client:   min %d  median %d  max %d update messages (after the snapshot, to the end of the check)",
		benchkit.Rank(updates, 0), benchkit.Rank(updates, .5), benchkit.Rank(updates, 1))
	p("during flow:  %d update messages, %.0f messages/s, %.1f MB/s (all bytes incl. snapshots / flow time)",
		s.flowUpdates, float64(s.flowUpdates)/secs, float64(s.flowBytes)/secs/1e6)
	p("\n-- push latency: T1 (a client finished reading an update carrying count=N) − T0 (send time of the first")
	p("   GET /api/stats/count, polled every %v, that returned N); one sample per (client, N)", probeInterval)
	p("probe:        %d polls, %d errors (last: %q), %d count values seen; gap between GETs %s",
		s.probe.polls, s.probe.fails, s.probe.lastErr, len(s.probe.first), pcts(s.probe.gaps, .5, .99, 1))
	p("latency:      %s  (N=%d samples; min %s, %d negative, %d values the probe never saw)",
		pcts(latencies, .5, .9, .99, 1), len(latencies), ms(benchkit.Rank(latencies, 0)), negative, unmatched)
	p("\n-- resources (%v flow)", s.flow.Round(time.Millisecond))
	p("wsload:       %.2f s CPU during the flow (%.0f%% of one core)", s.selfCPU.Seconds(), 100*s.selfCPU.Seconds()/secs)
	p("API process:  pid %d (broker + processor + API; the datafeed runs in its own process)", s.p.all.Pid())
	for _, x := range s.proc {
		p("  %-18s CPU %7.2f s  RSS %4d MB  peak RSS %4d MB  threads %3d  fds %5d", x.name+":", x.s.CPU.Seconds(), x.s.RSSKB/1024, x.s.HWMKB/1024, x.s.Threads, x.s.FDs)
	}
	p("  during the flow: %.2f s CPU (%.0f%% of one core)", s.flowCPU.Seconds(), 100*s.flowCPU.Seconds()/secs)
	p("\n-- convergence")
	if s.checkErr != nil {
		p("check:        NOT DONE: %v", s.checkErr)
	} else {
		p("check:        %d/%d clients had every statistic (%d) byte-equal to GET /api/stats (after json.Compact),", s.equal, len(s.clients), s.restStats)
		p("              read once it had stayed unchanged for %v", quietFor)
	}
	first5 := func(what string, l []string) {
		for _, x := range l[:min(5, len(l))] {
			p("  %-11s %s", what+":", x)
		}
	}
	first5("differs", s.mismatches)
	p("dropped:      %d connections closed before the end", len(drops))
	first5("drop", drops)
	p("protocol:     %d clients got an unexpected message", len(bad))
	first5("error", bad)
	if len(s.failures)+len(drops)+len(bad) > 0 || s.checkErr != nil || s.equal != s.cfg.clients {
		p("\nRESULT: FAIL (exit status 1)")
		return 1
	}
	p("\nRESULT: PASS")
	return 0
}

// pcts formats quantiles of sorted durations: "p50 1.0 ms  max 2.0 ms".
func pcts(d []time.Duration, qs ...float64) string {
	s := ""
	for _, q := range qs {
		name := fmt.Sprintf("p%g", q*100)
		if q == 1 {
			name = "max"
		}
		s += fmt.Sprintf("  %s %s", name, ms(benchkit.Rank(d, q)))
	}
	return s[2:]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// countReasons is the first three distinct reasons, each with its count.
func countReasons(errs []string) []string {
	n := map[string]int{}
	for _, e := range errs {
		n[e]++
	}
	var out []string
	for _, e := range slices.Sorted(maps.Keys(n)) {
		out = append(out, fmt.Sprintf("%d× %s", n[e], e))
	}
	return out[:min(3, len(out))]
}
