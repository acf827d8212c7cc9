package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/stats"
)

// The normal suite runs a small chaos test; CI runs the full one with
//
//	scripts/test-kafka -count=1 -v -run TestChaos ./e2e -chaos.records=1000000 -chaos.kills=12 -chaos.duration=90s
var (
	chaosRecords  = flag.Int("chaos.records", 40_000, "registrations the chaos test produces")
	chaosKills    = flag.Int("chaos.kills", 3, "processor SIGKILLs during the chaos test")
	chaosDuration = flag.Duration("chaos.duration", 10*time.Second, "how long the chaos test produces and kills")
	chaosBatch    = flag.Int("chaos.batch", 1000, "the processors' --batch-size in the chaos test")
	chaosSeed     = flag.Uint64("chaos.seed", 0, "random seed of the chaos test (0: random)")
)

// TestChaos produces registrations (about 1% invalid, null and picture_id
// keys, four partitions) while two processor processes are SIGKILLed at
// random moments and restarted, and the broker is restarted once. Then every
// statistic must equal the ground truth computed from the picture topic.
func TestChaos(t *testing.T) {
	seed := *chaosSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	cfg, broker := testkafka.StartBroker(t)
	bin := buildBinary(t)
	common := []string{"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix, "--log-level", "warn"}
	t.Logf("seed %d, %d records, %d kills over %v, batch size %d", seed, *chaosRecords, *chaosKills, *chaosDuration, *chaosBatch)

	logs := t.TempDir()
	sup := &supervisor{t: t, bin: bin, logs: logs,
		args: append(append([]string{"processor"}, common...), "--partitions", "4", "--batch-size", fmt.Sprint(*chaosBatch))}
	sup.showLogsOnFailure()
	sup.start(0)
	sup.start(1)
	_, url := startBinary(t, bin, append([]string{"api", "--addr", "127.0.0.1:0"}, common...)...)

	// Produce for the whole duration, at an even pace.
	produced := make(chan int64, 1)
	feedSeed := rng.Uint64() // rng itself stays with this goroutine
	go func() {
		produced <- produceChaos(t, cfg.Brokers, string(cfg.Names.Pictures), *chaosRecords, *chaosDuration, feedSeed)
	}()

	// Kill at random moments spread over the duration; restart the broker
	// once, half way. On the embedded broker, each blow waits until both
	// consumer groups have settled (see settled).
	start := time.Now()
	restarted := false
	for i := range *chaosKills {
		at := time.Duration(float64(*chaosDuration) * (float64(i) + rng.Float64()) / float64(*chaosKills))
		if !restarted && at > *chaosDuration/2 {
			time.Sleep(time.Until(start.Add(*chaosDuration / 2)))
			settled(t, cfg)
			t.Logf("%v: restarting the broker", time.Since(start).Round(time.Millisecond))
			broker.Restart(t)
			restarted = true
		}
		time.Sleep(time.Until(start.Add(at)))
		settled(t, cfg)
		sup.kill(rng.IntN(2))
	}
	if !restarted {
		broker.Restart(t)
	}
	acked := <-produced
	t.Logf("%v: production and chaos done", time.Since(start).Round(time.Millisecond))

	recs := readTopic(t, cfg, string(cfg.Names.Pictures))
	want := truthFrom(recs)
	if acked > want.total() {
		t.Fatalf("the producer had %d records acknowledged but the picture topic holds %d", acked, want.total())
	}
	waitForTotal(t, url, want.total(), 5*time.Minute)
	t.Logf("%v: the API shows every record", time.Since(start).Round(time.Millisecond))
	got, _ := waitForExact(t, url, want, 30*time.Second) // the table below shows any difference
	onePass := onePassResults(t, recs)
	differ, served := waitForResults(t, url, onePass, 30*time.Second)
	sup.stop()

	kills, crashes := sup.counts()
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintf(&table, "records produced    %d (%d acknowledged; %d valid, %d invalid)\n", want.total(), acked, want.count, want.total()-want.count)
	fmt.Fprintf(&table, "processor SIGKILLs  %d\n", kills)
	fmt.Fprintf(&table, "processor restarts  %d (%d after exiting on their own)\n", kills+crashes, crashes)
	fmt.Fprintf(&table, "broker restarts     1\n\n")
	fmt.Fprintf(tw, "statistic\texpected\tactual\t\t\n")
	rows := [][3]string{
		{"count", fmt.Sprint(want.count), fmt.Sprint(got.Count.Registrations)},
		{"average_weight.total_weight_grams", fmt.Sprint(want.sum), fmt.Sprint(got.Average.Total)},
		{"average_weight.registrations", fmt.Sprint(want.count), fmt.Sprint(got.Average.Registrations)},
		{"min_weight", fmt.Sprint(want.min), deref(got.Min.Grams)},
		{"max_weight", fmt.Sprint(want.max), deref(got.Max.Grams)},
		{"rejected", fmt.Sprint(want.total() - want.count), fmt.Sprint(got.Rejected.Total)},
	}
	for _, r := range codec.Reasons {
		rows = append(rows, [3]string{"rejected." + string(r), fmt.Sprint(want.rejected[r]), fmt.Sprint(got.Rejected.ByReason[r])})
	}
	// Every registered statistic, against one pass over the topic; long
	// results are shown by length and digest (both printed in full below
	// when they differ).
	for _, k := range stats.All() {
		rows = append(rows, [3]string{k.Name + " (one pass)", brief(onePass[k.Name]), brief(served[k.Name])})
	}
	for _, name := range differ {
		t.Errorf("%s: the API serves\n  %s\nbut one pass over the topic gives\n  %s", name, served[name], onePass[name])
	}
	bad := 0
	for _, r := range rows {
		mark := "ok"
		if r[1] != r[2] {
			mark, bad = "DIFFERENT", bad+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r[0], r[1], r[2], mark)
	}
	tw.Flush()
	t.Logf("chaos result:\n%s", table.String())
	if bad > 0 {
		t.Fatalf("%d statistics differ from the ground truth (processor logs in %s)", bad, logs)
	}
	if kills < *chaosKills {
		t.Fatalf("only %d of %d kills happened", kills, *chaosKills)
	}
}

func deref(p *int64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// produceChaos produces n registrations evenly over d and returns how many
// were acknowledged. Produce errors are tolerated (the broker restarts): the
// ground truth is what the topic holds.
func produceChaos(t *testing.T, brokers []string, topic string, n int, d time.Duration, seed uint64) int64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		t.Error(err)
		return 0
	}
	defer cl.Close()
	var mu sync.Mutex
	var acked int64
	var firstErr error
	const tick = 10 * time.Millisecond
	perTick := max(1, int(float64(n)*float64(tick)/float64(d)))
	for sent := 0; sent < n; {
		next := time.Now().Add(tick)
		for i := 0; i < perTick && sent < n; i++ {
			r := &kgo.Record{Topic: topic}
			if rng.IntN(100) == 0 {
				r.Value = []byte(invalid[rng.IntN(len(invalid))].value)
			} else {
				reg := codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(100)), Weight: 20 + rng.Int64N(4980)}
				r.Value = codec.Encode(reg)
				if rng.IntN(2) == 0 {
					r.Key = []byte(reg.PictureID)
				}
			}
			cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				} else if err == nil {
					acked++
				}
			})
			sent++
		}
		time.Sleep(time.Until(next))
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Errorf("flush: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		t.Logf("some records were not acknowledged (first error: %v); the topic is the ground truth", firstErr)
	}
	return acked
}

// settled waits, on the embedded broker only, until the input group and the
// table group are Stable with both processors as members. kfake (not Apache
// Kafka) can keep a member that was killed in the middle of a rebalance in
// its group for good: observed as a Stable input group of three members with
// two processes alive, the dead one holding a partition for minutes while
// nothing read it. On Apache Kafka the test kills at any moment.
func settled(t *testing.T, cfg cluster.Config) {
	t.Helper()
	if testkafka.Real() {
		return
	}
	adm, groups, closeAdm := groupAdmin(t, cfg)
	defer closeAdm()
	deadline := time.Now().Add(time.Minute)
	for {
		described, err := adm.DescribeGroups(context.Background(), groups...)
		ok := err == nil && len(described) == len(groups)
		for _, g := range described {
			ok = ok && g.State == "Stable" && len(g.Members) == 2
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("groups not settled after a minute (%v); going on", err)
			return
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// brief shows a JSON result in a table cell.
func brief(result string) string {
	if len(result) <= 40 {
		return result
	}
	return fmt.Sprintf("%d bytes, sha256 %x", len(result), sha256.Sum256([]byte(result)))[:40]
}

// truthFrom computes the expected statistics from the records of the
// picture topic, independently of the stats package.
func truthFrom(recs []*kgo.Record) *feed {
	want := &feed{min: -1, rejected: map[codec.Reason]int64{}}
	for _, r := range recs {
		reg, err := codec.Decode(r.Value)
		if err != nil {
			reason, _ := codec.ReasonOf(err)
			want.rejected[reason]++
			continue
		}
		want.add(&feed{count: 1, sum: reg.Weight, min: reg.Weight, max: reg.Weight})
	}
	return want
}

// supervisor runs processor processes, SIGKILLs them on request and restarts
// any that exit, like a container runtime with a restart policy.
type supervisor struct {
	t    *testing.T
	bin  string
	args []string
	logs string

	mu       sync.Mutex
	procs    [2]*exec.Cmd
	killing  [2]bool
	kills    int
	crashes  int
	stopping bool
	wg       sync.WaitGroup
}

func (s *supervisor) start(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(i); err != nil {
		s.t.Fatal(err)
	}
}

// showLogsOnFailure has the test show the last lines of each processor's
// log if it fails: the processors' own account of a failure.
func (s *supervisor) showLogsOnFailure() {
	s.t.Cleanup(func() {
		if s.t.Failed() {
			for i := range s.procs {
				b, _ := os.ReadFile(filepath.Join(s.logs, fmt.Sprintf("processor-%d.log", i)))
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				s.t.Logf("last lines of processor %d's log:\n%s", i, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		}
	})
}

// startLocked starts processor i; restarts run it on the goroutine that
// waited for the previous one, where the test may not be stopped (t.Fatal
// is for the test's own goroutine), so it returns its error.
func (s *supervisor) startLocked(i int) error {
	logf, err := os.OpenFile(filepath.Join(s.logs, fmt.Sprintf("processor-%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := dieWithTest(exec.Command(s.bin, s.args...))
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start processor %d: %w", i, err)
	}
	s.procs[i] = cmd
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := cmd.Wait()
		logf.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopping {
			return
		}
		if s.killing[i] {
			s.killing[i] = false
		} else {
			s.crashes++
			s.t.Logf("processor %d exited on its own (%v): %s", i, err, lastLine(logf.Name()))
			time.Sleep(time.Second) // a restart policy's back-off
		}
		if err := s.startLocked(i); err != nil {
			s.t.Errorf("restarting processor %d: %v", i, err)
		}
	}()
	return nil
}

// kill SIGKILLs processor i, once it is running again after a previous kill.
func (s *supervisor) kill(i int) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		if !s.killing[i] {
			s.killing[i] = true
			s.kills++
			_ = s.procs[i].Process.Signal(syscall.SIGKILL)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

func (s *supervisor) counts() (kills, crashes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kills, s.crashes
}

func (s *supervisor) stop() {
	s.mu.Lock()
	s.stopping = true
	for _, c := range s.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := lines[len(lines)-1]
	if len(last) > 300 {
		last = last[:300] + "…"
	}
	return last
}
