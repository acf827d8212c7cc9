package e2e

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/datafeed"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
)

// The broker-loss test needs a cluster of its own; .ci/run runs it with
//
//	go test -count=1 -v -timeout 20m -run TestBrokerLoss ./e2e -brokerloss
var (
	brokerLoss     = flag.Bool("brokerloss", false, "run TestBrokerLoss: it starts a three-broker Apache Kafka cluster with scripts/kafka-cluster (the jars of scripts/kafka fetch)")
	brokerLossRate = flag.Float64("brokerloss.rate", 300, "the datafeed's records per second in TestBrokerLoss")
)

// TestBrokerLoss runs picstats on a three-broker Apache Kafka cluster with
// replication 3 (min.insync.replicas 2): two processor processes, two API
// processes and a datafeed at a steady rate. Mid-stream it SIGKILLs the
// broker that leads the most partitions of picstats' topics, waits until
// both APIs have shown new records without it, restarts it and waits until
// every partition has its three in-sync replicas again, then SIGKILLs the
// broker that now leads the most, and leaves it down. At the end every
// statistic, windowed ones too, equals one pass over the picture topic on
// both APIs, and every record the datafeed had acknowledged is in the
// topic at the offset it was acknowledged with.
func TestBrokerLoss(t *testing.T) {
	if !*brokerLoss {
		t.Skip("the broker-loss test runs only with -brokerloss: it starts its own three-broker Apache Kafka cluster (.ci/run runs it)")
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Logf("%6.1fs: %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	cfg, kc := testkafka.StartCluster(t, 3)
	bin := buildBinary(t)
	common := []string{"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix, "--log-level", "warn"}
	logf("three-broker cluster started, picstats built")

	sup := &supervisor{t: t, bin: bin, logs: t.TempDir(),
		args: append(append([]string{"processor"}, common...), "--partitions", "4", "--replication", "3")}
	sup.showLogsOnFailure()
	sup.start(0)
	sup.start(1)
	var urls []string
	for range 2 {
		_, url := startBinary(t, bin, append([]string{"api", "--addr", "127.0.0.1:0"}, common...)...)
		urls = append(urls, url)
	}
	for _, url := range urls {
		await.True(t, 2*time.Minute, url+"/readyz to answer 200", func() bool { return statusOf(url+"/readyz") == http.StatusOK })
	}
	logf("two processors and two APIs ready")

	// The feed: the datafeed package, as `picstats datafeed` runs it, noting
	// every record the cluster acknowledged.
	var mu sync.Mutex
	acked := map[[2]int64]string{} // partition, offset → value
	ctx, stopFeed := context.WithCancel(context.Background())
	defer stopFeed()
	fed := make(chan error, 1)
	go func() {
		cl, err := cfg.Client()
		if err != nil {
			fed <- err
			return
		}
		defer cl.Close()
		_, err = datafeed.Run(ctx, cl, datafeed.Config{
			Topic: string(cfg.Names.Pictures), Images: "../images", Rate: *brokerLossRate, Key: datafeed.KeyNone,
			Rand: rand.New(rand.NewPCG(1, 2)),
			Acked: func(r *kgo.Record) {
				mu.Lock()
				defer mu.Unlock()
				acked[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
			},
		}, cfg.Logger)
		fed <- err
	}()

	// grows waits until both APIs count at least n more registrations than
	// they did when it was called: picstats keeps working.
	grows := func(what string, n int64) {
		t.Helper()
		for _, url := range urls {
			from := countOf(url)
			await.True(t, 3*time.Minute, fmt.Sprintf("%s to count %d more registrations %s", url, n, what), func() bool {
				return countOf(url) >= from+n
			})
		}
		logf("both APIs counted %d more registrations %s", n, what)
	}
	perBlow := int64(*brokerLossRate * 5) // five seconds' worth
	grows("before the first blow", perBlow)

	first, led := leaderOfMost(t, cfg, -1)
	logf("SIGKILL broker %d, leader of %d of picstats' partitions (%v)", first, led[first], led)
	kc.Kill(t, first)
	grows(fmt.Sprintf("with broker %d down", first), perBlow)
	kc.Restart(t, first)
	logf("broker %d restarted", first)
	allInSync(t, cfg)
	logf("every partition has its three in-sync replicas again")
	grows(fmt.Sprintf("with broker %d back", first), perBlow)

	second, led := leaderOfMost(t, cfg, first)
	logf("SIGKILL broker %d, leader of %d of picstats' partitions (%v); it stays down", second, led[second], led)
	kc.Kill(t, second)
	grows(fmt.Sprintf("with broker %d down", second), perBlow)

	stopFeed()
	if err := <-fed; err != nil {
		t.Errorf("datafeed: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	logf("datafeed stopped: %d records acknowledged", len(acked))

	recs := readTopic(t, cfg, string(cfg.Names.Pictures))
	stored := map[[2]int64]string{}
	for _, r := range recs {
		stored[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value)
	}
	missing := 0
	for at, value := range acked {
		if stored[at] != value {
			if missing++; missing <= 10 {
				t.Errorf("acknowledged at partition %d offset %d: %s; the topic holds %q there", at[0], at[1], value, stored[at])
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged records are not in %s", missing, len(acked), cfg.Names.Pictures)
	}
	logf("the picture topic holds all %d acknowledged records (%d records in all)", len(acked), len(recs))

	want, onePass := truthFrom(recs), onePassResults(t, recs)
	for _, url := range urls {
		waitForTotal(t, url, want.total(), 5*time.Minute)
		if _, problems := waitForExact(t, url, want, time.Minute); len(problems) > 0 {
			t.Errorf("%s: %s", url, strings.Join(problems, "; "))
		}
		differ, served := waitForResults(t, url, onePass, time.Minute)
		for _, name := range differ {
			t.Errorf("%s: %s: the API serves\n  %s\nbut one pass over the topic gives\n  %s", url, name, served[name], onePass[name])
		}
		logf("%s serves every statistic (%d, windowed ones too) as one pass over the topic gives it", url, len(onePass))
	}
	kills, crashes := sup.counts()
	sup.stop()
	logf("processors stopped")
	if kills+crashes > 0 {
		t.Errorf("processors exited %d times during the broker losses; they should ride them out", kills+crashes)
	}
}

// leaderOfMost returns the broker, other than not, that leads the most
// partitions of picstats' topics, and how many each broker leads.
func leaderOfMost(t *testing.T, cfg cluster.Config, not int32) (int32, map[int32]int) {
	t.Helper()
	led := map[int32]int{}
	eachPartition(t, cfg, func(p kadm.PartitionDetail) { led[p.Leader]++ })
	best := int32(-1)
	for _, b := range slices.Sorted(maps.Keys(led)) {
		if b != not && b >= 0 && (best < 0 || led[b] > led[best]) {
			best = b
		}
	}
	if best < 0 {
		t.Fatalf("no leader of picstats' partitions but broker %d: %v", not, led)
	}
	return best, led
}

// allInSync waits until every partition of picstats' topics has all its
// replicas in sync.
func allInSync(t *testing.T, cfg cluster.Config) {
	t.Helper()
	await.Until(t, 3*time.Minute, "every partition's replicas to be in sync", func() error {
		var behind []string
		eachPartition(t, cfg, func(p kadm.PartitionDetail) {
			if len(p.ISR) < len(p.Replicas) {
				behind = append(behind, fmt.Sprintf("%s/%d ISR %v of %v", p.Topic, p.Partition, p.ISR, p.Replicas))
			}
		})
		if len(behind) > 0 {
			return fmt.Errorf("%s", strings.Join(behind, ", "))
		}
		return nil
	})
}

// eachPartition calls f with every partition of the topics picstats
// created: picture, snapshots, table and stats.
func eachPartition(t *testing.T, cfg cluster.Config, f func(kadm.PartitionDetail)) {
	t.Helper()
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics := []string{string(cfg.Names.Pictures), string(cfg.Names.Snapshots()), string(cfg.Names.Table()), string(cfg.Names.Stats)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		t.Fatalf("metadata of %v: %v", topics, err)
	}
	for _, topic := range topics {
		d := details[topic]
		if d.Err != nil {
			t.Fatalf("metadata of %s: %v", topic, d.Err)
		}
		for _, p := range d.Partitions.Sorted() {
			f(p)
		}
	}
}

// countOf is the API's count of registrations, 0 when it does not answer.
func countOf(url string) int64 {
	var c struct {
		Registrations int64 `json:"registrations"`
	}
	if status, err := getJSON(url+"/api/stats/count", &c); err != nil || status != http.StatusOK {
		return 0
	}
	return c.Registrations
}

// statusOf is the status of GET url, 0 when it does not answer.
func statusOf(url string) int {
	resp, err := apiClient.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
