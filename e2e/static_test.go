package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
)

// lineWatch passes a process's output to the test log and counts the
// lines that contain each of its texts.
type lineWatch struct {
	t     *testing.T
	mu    sync.Mutex
	texts []string
	seen  map[string]int
	part  string
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(w.part+string(p), "\n")
	w.part = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		for _, s := range w.texts {
			if strings.Contains(l, s) {
				w.seen[s]++
			}
		}
	}
	return testWriter{w.t}.Write(p)
}

func (w *lineWatch) count(text string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[text]
}

// groupAdmin returns an admin client for cfg's cluster, the processor's
// two consumer groups (input, table) and what closes the client.
func groupAdmin(t *testing.T, cfg cluster.Config) (*kadm.Client, []string, func()) {
	t.Helper()
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	return kadm.NewClient(cl), []string{cfg.Names.InputGroup(), string(cfg.Names.Group)}, cl.Close
}

// TestStaticMemberRejoinsWithoutARebalance SIGKILLs one of two processors
// started with --instance-id and restarts it at once with the same id: it
// must get its partitions back in both consumer groups without a
// rebalance, so the other processor is never asked to give up or take
// partitions (it logs "input partitions assigned" at every rebalance of the
// input group, cooperative or not). The restarted processor's own
// assignment is the proof that the group moved on: in a rebalance it could
// not get one before the other had rejoined.
//
// Apache Kafka only: the embedded broker (kfake) rebalances when a static
// member rejoins.
func TestStaticMemberRejoinsWithoutARebalance(t *testing.T) {
	requireRealKafka(t)
	cfg := testkafka.Start(t)
	bin := buildBinary(t)
	const assigned, ready = "input partitions assigned", "processor ready"
	start := func(id string) (*exec.Cmd, *lineWatch) {
		w := &lineWatch{t: t, texts: []string{assigned, ready}, seen: map[string]int{}}
		cmd := dieWithTest(exec.Command(bin, "processor", "--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix,
			"--partitions", "4", "--instance-id", id, "--session-timeout", "30s"))
		cmd.Dir = ".."
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, w
	}
	adm, groups, closeAdm := groupAdmin(t, cfg)
	defer closeAdm()
	// members returns each group's member id of every instance id, once
	// both groups are stable.
	members := func() (map[string]map[string]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a fresh broker may take long to answer
		defer cancel()
		d, err := adm.DescribeGroups(ctx, groups...)
		if err != nil {
			return nil, err
		}
		out := map[string]map[string]string{}
		for _, g := range groups {
			if d[g].Err != nil || d[g].State != "Stable" {
				return nil, fmt.Errorf("group %s: state %q, %v", g, d[g].State, d[g].Err)
			}
			out[g] = map[string]string{}
			for _, m := range d[g].Members {
				if m.InstanceID != nil {
					out[g][*m.InstanceID] = m.MemberID
				}
			}
		}
		return out, nil
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		await.True(t, 2*time.Minute, what, ok)
	}

	a, aLog := start("a")
	waitFor("a ready", func() bool { return aLog.count(ready) > 0 })
	b, bLog := start("b")
	var before map[string]map[string]string
	waitFor("both processors in both groups, stable", func() bool {
		m, err := members()
		// a logs its assignment when it starts and at both rounds of the
		// cooperative rebalance b's join makes, b at both rounds.
		if err == nil && len(m[groups[0]]) == 2 && len(m[groups[1]]) == 2 && bLog.count(ready) > 0 &&
			aLog.count(assigned) >= 3 && bLog.count(assigned) >= 2 {
			before = m
			return true
		}
		return false
	})
	aAssigned := aLog.count(assigned)

	if err := b.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = b.Wait()
	_, bLog = start("b")
	waitFor("the restarted b assigned and ready", func() bool { return bLog.count(assigned) > 0 && bLog.count(ready) > 0 })
	after, err := members()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if after[g]["a"] != before[g]["a"] || after[g]["b"] == "" || after[g]["b"] == before[g]["b"] {
			t.Errorf("group %s: members %v before, %v after; want a's unchanged and b's replaced", g, before[g], after[g])
		}
	}
	if n := aLog.count(assigned); n != aAssigned {
		t.Errorf("processor a took part in %d rebalances of the input group while b restarted, want none", n-aAssigned)
	}
	stopGracefully(t, a)
}
