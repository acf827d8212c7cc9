package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/testkafka"
)

// The soak test runs only when asked for a duration; scripts/soak runs it
// on Apache Kafka:
//
//	scripts/soak --duration 10m
var (
	soakDuration = flag.Duration("soak.duration", 0, "how long the soak test feeds the pipeline and injects faults (0: skip it; see scripts/soak)")
	soakRate     = flag.Float64("soak.rate", 200, "the datafeed's --rate in the soak test")
	soakSeed     = flag.Uint64("soak.seed", 0, "random seed of the soak test's fault schedule (0: random)")
	soakLogs     = flag.String("soak.logs", "", "folder for the soak test's process logs and its probes.csv and samples.csv, kept afterwards (default: a temporary folder for the logs, removed)")
)

// Timings of the soak test.
const (
	soakProbeEvery  = 100 * time.Millisecond // the prober's and the sampler's pace
	soakClientWait  = 10 * time.Second       // the prober's client timeout: a hang is measured, not cut
	soakMaxWait     = 2 * time.Second        // no request may wait longer
	soakFaultMin    = 30 * time.Second       // faults come every 30-60 s
	soakFaultMax    = 60 * time.Second
	soakSession     = cluster.DefaultSessionTimeout // session timeout of both consumer groups of a processor (--session-timeout)
	soakPauseExtra  = 5 * time.Second               // a SIGSTOP lasts the session timeout plus 5-10 s
	soakStaleWindow = 5 * time.Second               // item 2 of issue 13: /readyz may be this late
	soakCurrentLag  = 250 * time.Millisecond
	soakMaxGap      = 300 * time.Millisecond // the densest gap the judge accepts as observed throughout
)

// TestSoak runs the built binary as two processor processes, one api
// process and one datafeed process (--rate 200) on a real broker, and
// every 30-60 s (seeded, the seed logged) injects one fault, cycling
// through the four kinds in a shuffled order so that each occurs: a broker
// restart, a processor SIGKILLed (and restarted), the API SIGKILLed (and
// restarted on the same port), a processor paused with SIGSTOP for 15-20 s
// — longer than the 10 s session timeout of both its consumer groups (the
// input stage's franz-go group and goka's sarama group), so that the
// other takes its partitions — and resumed with SIGCONT. A process that
// exits on its own is restarted after a second, like a restart policy
// would, and counted.
//
// Meanwhile a prober sends GET /api/stats and GET /readyz every 100 ms
// (separate requests on fresh connections, each on its own goroutine so a
// hang does not stop the pace, with a 10 s client timeout so a hang is
// measured) and records when each was sent, how long it took to the last
// byte of the answer or to the error, the status and the
// Picstats-View-Position header P. A refused or cut connection (the API
// process is down) counts as "down". A sampler asks the broker every
// 100 ms, with its own client, for the end offsets of the table topic;
// E(x) is their sum over the partitions, and each sample records when its
// request was sent and when its answer came. Before each sample it dials
// the broker's port, and records whether the connection was refused.
//
// The judge. Let t be the time a /readyz probe was sent and P the position
// of its answer. The View never applies more than the table holds, and the
// table's end offsets only grow, so P ≥ E of a sample means the View held
// at least everything the table held when that sample was sent, and P < E
// of a sample means it lacked something the table held when that sample's
// answer came. A readiness mismatch is:
//
//	(a) a 200 with P < E(s) for the newest sample s whose answer came at
//	    or before t − 5 s: the View lacks what the table held 5 s earlier
//	    (stale, yet ready);
//	(b) a 503 at t ≥ 5 s after probing began, when the whole window
//	    [t − 5 s, t] was observed and the View was current throughout it:
//	    observed means no broker restart (from the call of Broker.Restart
//	    to its return) overlaps [t − 5.55 s, t], every sample sent in
//	    [t − 5.55 s, t] succeeded, with no gap over 300 ms between them (or
//	    at the window's ends), and every /readyz probe sent in [t − 5 s, t]
//	    was answered 200 or 503 with a position, with no gap over 300 ms
//	    between them. (A restart can be too quick for the samples to fail
//	    — the embedded broker's takes 0.2 s — and while the View reconnects
//	    it does not consume, so a 503 is allowed, though the table, idle
//	    meanwhile, makes it look current.) Current
//	    means each of those answers (the one at t included) has P ≥ E(s)
//	    for the newest sample s sent at least 250 ms before the probe.
//	    The 250 ms: the table is written every few tens of milliseconds
//	    under load and the View applies a write some milliseconds later,
//	    so "P ≥ E of the sample just before the probe" would almost never
//	    hold for 5 s running and (b) would judge nothing. P is a sum over
//	    the partitions; a View partition stalled on its own while the
//	    others are current still fails the condition within a/f seconds,
//	    where a ≤ 0.55 s is the sample's age and f the stalled partition's
//	    share of the table's writes (at least 1/6 with picstats' statistic
//	    names on 4 partitions: so within 3.3 s, inside the 5 s window);
//	(c) a 200 at t when the broker refused every connection the sampler
//	    tried in [t − 5 s, t] (no gap over 300 ms between them): the View
//	    cannot have consumed anything, nor the API checked the end offsets,
//	    for 5 s, so the API cannot know its values are current (issue 13:
//	    503 within 5 s of the broker going away). (a) cannot see this: the
//	    table does not grow while the broker is down.
//
// A 503 whose window was not observed throughout (the broker restarting,
// the API down, the View behind) is never a mismatch; the table says how
// many 503s the judge could call. Any other /readyz status, or a 200 or
// 503 without a position, fails the test too.
//
// Pass: no request waits more than 2 s (answered or not); no readiness
// mismatch; after the datafeed stops and the processors catch up, every
// statistic the API serves equals the ground truth computed from the
// picture topic (truthFrom, and onePassResults for every statistic); and
// the API's final /readyz answers 200. The test prints a table of it all.
func TestSoak(t *testing.T) {
	if *soakDuration <= 0 {
		t.Skip("the soak test runs only with -soak.duration > 0: run scripts/soak --duration 10m (Apache Kafka, as CI does with 2m)")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	cfg, broker := testkafka.StartBroker(t)
	if !testkafka.Real() {
		t.Log("on the embedded broker: the soak test is meant for Apache Kafka (scripts/soak)")
	}
	bin := buildBinary(t)
	logs := *soakLogs
	if logs == "" {
		logs = t.TempDir()
	} else if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("soak: %v at %v records/s, seed %d, process logs in %s", *soakDuration, *soakRate, seed, logs)

	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	common := []string{"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix}
	role := func(name string, args ...string) []string { return append(append([]string{name}, common...), args...) }
	procs := []*soakProc{
		newSoakProc(t, bin, "processor-0", logs, role("processor", "--partitions", "4")),
		newSoakProc(t, bin, "processor-1", logs, role("processor", "--partitions", "4")),
		newSoakProc(t, bin, "api", logs, role("api", "--addr", fmt.Sprintf("127.0.0.1:%d", port))),
		newSoakProc(t, bin, "datafeed", logs, role("datafeed", "--partitions", "4", "--rate", fmt.Sprint(*soakRate))),
	}
	processors, apiProc, feeder := procs[:2], procs[2], procs[3]
	var sampler *sampler
	var prober *prober
	reported := false
	// The failures are repeated as the test's last lines (after the
	// processes' logs) and in result.txt: CI shows only the end of a run.
	var failures []string
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		failures = append(failures, msg)
		t.Error(msg)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if prober != nil {
			prober.stop()
			sampler.stop()
			if !reported && *soakLogs != "" { // stopped half way: keep what was measured
				if err := writeSoakData(logs, prober.records(), sampler.records()); err == nil {
					t.Logf("the probes and samples so far are in %s", logs)
				}
			}
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("last lines of %s:\n%s", p.log, lastLines(p.log, 30))
			}
			if dir := os.Getenv(testkafka.EnvKafkaDir); dir != "" && *soakLogs != "" {
				if err := copyFile(filepath.Join(dir, "broker.log"), filepath.Join(logs, "broker.log")); err == nil {
					t.Logf("the broker's log is in %s", filepath.Join(logs, "broker.log"))
				}
			}
		}
		if len(failures) > 0 {
			t.Logf("the soak test failed (its result is in %s):\n%s", filepath.Join(logs, "result.txt"), strings.Join(failures, "\n"))
		}
	})

	for _, p := range procs {
		p.start()
	}
	sampler = startSampler(t, cfg)
	prober = startProber(url)

	// The schedule starts once the pipeline is ready.
	if !awaitReady(url, 3*time.Minute) {
		t.Fatalf("%s/readyz did not answer 200 within 3 minutes of starting the pipeline", url)
	}
	start := time.Now()
	t.Logf("pipeline ready %v after the API started", start.Sub(prober.began).Round(time.Millisecond))

	// Faults: every 30-60 s from the start of the previous one (never two
	// at once), each kind once per cycle in a shuffled order.
	kinds := []string{faultBroker, faultProcessorKill, faultAPIKill, faultProcessorPause}
	faults := map[string]int{}
	var timeline []string
	var restarts []span // the broker restarts, for the judge
	var cycle []string
	for next := start.Add(randDuration(rng, soakFaultMin, soakFaultMax)); next.Before(start.Add(*soakDuration)); {
		time.Sleep(time.Until(next)) // pacing the schedule, not synchronisation
		if len(cycle) == 0 {
			cycle = append([]string(nil), kinds...)
			rng.Shuffle(len(cycle), func(i, j int) { cycle[i], cycle[j] = cycle[j], cycle[i] })
		}
		kind := cycle[0]
		cycle = cycle[1:]
		began := time.Now()
		what := kind
		switch kind {
		case faultBroker:
			broker.Restart(t)
			restarts = append(restarts, span{began, time.Now()})
		case faultProcessorKill:
			i := rng.IntN(len(processors))
			what = fmt.Sprintf("%s (processor %d)", kind, i)
			processors[i].sigkill()
		case faultAPIKill:
			apiProc.sigkill()
		case faultProcessorPause:
			i := rng.IntN(len(processors))
			pause := soakSession + soakPauseExtra + randDuration(rng, 0, soakPauseExtra)
			what = fmt.Sprintf("%s (processor %d, %v)", kind, i, pause.Round(time.Millisecond))
			processors[i].pause(pause)
		}
		faults[kind]++
		line := fmt.Sprintf("%7.1fs  %s, took %v", began.Sub(start).Seconds(), what, time.Since(began).Round(time.Millisecond))
		timeline = append(timeline, line)
		t.Log("fault at " + line)
		next = began.Add(randDuration(rng, soakFaultMin, soakFaultMax))
	}
	time.Sleep(time.Until(start.Add(*soakDuration))) // the feed runs the whole duration
	feedExit := feeder.stop(time.Minute)
	t.Logf("%v: datafeed stopped (%s); the processors catch up", time.Since(start).Round(time.Millisecond), feedExit)

	// The ground truth, and the API's final answers.
	recs := readTopic(t, cfg, string(cfg.Names.Pictures))
	want := truthFrom(recs)
	caughtUp := awaitTotal(url, want.total(), 5*time.Minute)
	got, problems := waitForExact(t, url, want, time.Minute)
	onePass := onePassResults(t, recs)
	differ, served := waitForResults(t, url, onePass, time.Minute)
	t.Logf("%v: final checks done", time.Since(start).Round(time.Millisecond))
	prober.stop()
	sampler.stop()
	finalStatus, finalErr := finalReadyz(url)
	exits := map[string]string{}
	for _, p := range procs[:3] {
		exits[p.name] = p.stop(30 * time.Second)
	}

	// Judge and report.
	probes, samples := prober.records(), sampler.records()
	j := judgeSoak(probes, samples, restarts, prober.began)
	reported = true
	if *soakLogs != "" {
		if err := writeSoakData(logs, probes, samples); err != nil {
			t.Errorf("writing the probes and samples: %v", err)
		}
	}
	var table bytes.Buffer
	fmt.Fprintf(&table, "soak %v on %s, datafeed --rate %v, seed %d; 2 processors, 1 API, 1 datafeed\n\n",
		*soakDuration, brokerKind(), *soakRate, seed)
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "route\trequests\t200\t503\tother\tdown\ttimed out\tp50\tp99\tmax\t> 2 s\t\n")
	for _, r := range []string{routeStats, routeReadyz} {
		c := j.routes[r]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t\n", r, c.requests, c.ok, c.unavailable, c.other, c.down, c.timeouts,
			ms(c.quantile(0.50)), ms(c.quantile(0.99)), ms(c.quantile(1)), c.slow)
	}
	tw.Flush()
	fmt.Fprintf(&table, "\nreadiness           200: %d, 503: %d (recovering %d, stale %d); other answers or no position: %d\n",
		j.ready, j.notReady, j.bodyStatus["recovering"], j.bodyStatus["stale"], j.unjudgeable)
	fmt.Fprintf(&table, "mismatches (a)      %d  200 while P < E(t - 5 s)\n", len(j.mismatchA))
	fmt.Fprintf(&table, "mismatches (b)      %d  503 while current for the whole last 5 s (%d of the 503s were observed for 5 s)\n", len(j.mismatchB), j.judgedB)
	fmt.Fprintf(&table, "mismatches (c)      %d  200 while the broker refused every connection for the last 5 s (%d answers came in such windows)\n", len(j.mismatchC), j.judgedC)
	fmt.Fprintf(&table, "end-offset samples  %d (%d failed), broker refused connections in %d\n", j.samples, j.samplesFailed, j.refused)
	fmt.Fprintf(&table, "faults              broker restart %d, processor SIGKILL %d, API SIGKILL %d, processor SIGSTOP %d\n",
		faults[faultBroker], faults[faultProcessorKill], faults[faultAPIKill], faults[faultProcessorPause])
	var crashes []string
	for _, p := range procs {
		if n := p.crashCount(); n > 0 {
			crashes = append(crashes, fmt.Sprintf("%s %d", p.name, n))
		}
	}
	fmt.Fprintf(&table, "exits on their own  %s\n", orNone(strings.Join(crashes, ", ")))
	fmt.Fprintf(&table, "records produced    %d (%d valid, %d invalid)\n", want.total(), want.count, want.total()-want.count)
	exact := len(onePass) - len(differ)
	fmt.Fprintf(&table, "final exactness     %d of %d statistics (windowed ones too) equal one pass over the picture topic; differences from truthFrom (count, sum, min, max, rejected): %s\n",
		exact, len(onePass), orNone(strings.Join(problems, "; ")))
	fmt.Fprintf(&table, "final /readyz       %d %s\n", finalStatus, finalErr)
	fmt.Fprintf(&table, "stopped (SIGTERM)   %s\n", fmt.Sprintf("processor-0: %s, processor-1: %s, api: %s, datafeed: %s",
		exits["processor-0"], exits["processor-1"], exits["api"], feedExit))
	fmt.Fprintf(&table, "\nfault timeline (seconds after the pipeline was ready):\n%s\n", strings.Join(timeline, "\n"))
	t.Logf("soak result:\n%s", table.String())
	defer func() { // the table and the failures, for a look after the run
		text := table.String() + "\n" + orNone(strings.Join(failures, "\n")) + "\n"
		if err := os.WriteFile(filepath.Join(logs, "result.txt"), []byte(text), 0o644); err != nil {
			t.Errorf("writing the result: %v", err)
		}
	}()

	// The evidence for each failure.
	for _, kind := range []struct {
		name string
		list []string
	}{{"(a)", j.mismatchA}, {"(b)", j.mismatchB}, {"(c)", j.mismatchC}} {
		for i, m := range kind.list {
			if i == 10 {
				t.Logf("... and %d more", len(kind.list)-10)
				break
			}
			t.Logf("mismatch %s: %s", kind.name, m)
		}
	}
	for _, r := range []string{routeStats, routeReadyz} {
		for _, s := range j.routes[r].slowest {
			t.Logf("slow: %s", s)
		}
	}
	for _, name := range differ {
		fail("%s: the API serves\n  %s\nbut one pass over the topic gives\n  %s", name, served[name], onePass[name])
	}
	for _, p := range problems {
		fail("final answer: %s", p)
	}
	if !caughtUp {
		fail("the API did not show all %d records within 5 minutes of the datafeed stopping (last: %d valid + %d rejected)",
			want.total(), got.Count.Registrations, got.Rejected.Total)
	}
	for _, r := range []string{routeStats, routeReadyz} {
		if c := j.routes[r]; c.slow > 0 {
			fail("%s: %d requests waited more than %v (longest %v)", r, c.slow, soakMaxWait, c.quantile(1))
		}
	}
	if n := len(j.mismatchA) + len(j.mismatchB) + len(j.mismatchC); n > 0 {
		fail("%d readiness mismatches: (a) %d, (b) %d, (c) %d", n, len(j.mismatchA), len(j.mismatchB), len(j.mismatchC))
	}
	if j.unjudgeable > 0 {
		fail("%d /readyz answers were neither 200 nor 503 with a Picstats-View-Position header (first: %s)", j.unjudgeable, j.firstUnjudgeable)
	}
	if j.ready == 0 {
		fail("/readyz never answered 200")
	}
	if finalStatus != 200 {
		fail("the final /readyz answered %d %s, want 200", finalStatus, finalErr)
	}
	for _, k := range kinds {
		if faults[k] == 0 && *soakDuration >= 4*soakFaultMax {
			fail("no %s in %v", k, *soakDuration)
		}
	}
}

const (
	faultBroker         = "broker restart"
	faultProcessorKill  = "processor SIGKILL"
	faultAPIKill        = "API SIGKILL"
	faultProcessorPause = "processor SIGSTOP"
)

func randDuration(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func brokerKind() string {
	if testkafka.Real() {
		return "Apache Kafka"
	}
	return "the embedded broker"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// freePort returns a TCP port nothing listens on now, for a process that
// is restarted on the same port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lastLines(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
