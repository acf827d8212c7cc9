// Package testkafka gives integration tests a real Kafka-compatible broker:
// the cluster named by $PICSTATS_TEST_BROKERS when it is set (CI sets it to
// an Apache Kafka broker), and otherwise a fresh embedded kfake broker that
// is closed when the test ends. Each test gets its own topic prefix, so tests
// can share a cluster.
package testkafka

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picstats/picstats/cluster"
)

// EnvBrokers names the environment variable that selects a real cluster.
const EnvBrokers = "PICSTATS_TEST_BROKERS"

// Real reports whether tests run against the cluster in $PICSTATS_TEST_BROKERS.
func Real() bool { return os.Getenv(EnvBrokers) != "" }

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// EnvKafkaDir names the environment variable with the folder of the real
// broker that scripts/kafka runs, which tests need to restart it.
const EnvKafkaDir = "PICSTATS_TEST_KAFKA_DIR"

// Start returns the configuration of a cluster for this test, with names no
// other test uses.
func Start(t testing.TB) cluster.Config {
	t.Helper()
	cfg, _ := StartBroker(t)
	return cfg
}

// Broker is the broker of a test, which the test may restart.
type Broker struct {
	embedded *cluster.Embedded
	dataDir  string
	port     int
}

// StartBroker is Start that also returns the broker. An embedded broker
// keeps its state in a temporary folder, so that it survives a restart.
func StartBroker(t testing.TB) (cluster.Config, *Broker) {
	t.Helper()
	b := &Broker{}
	var brokers []string
	if env := os.Getenv(EnvBrokers); env != "" {
		var err error
		if brokers, err = cluster.ParseBrokers(env); err != nil {
			t.Fatalf("$%s: %v", EnvBrokers, err)
		}
	} else {
		b.dataDir = t.TempDir()
		b.start(t)
		t.Cleanup(func() { b.embedded.Close() })
		brokers = b.embedded.Brokers()
		_, port, _ := net.SplitHostPort(brokers[0])
		b.port, _ = strconv.Atoi(port)
	}
	return config(t, brokers, Real()), b
}

func (b *Broker) start(t testing.TB) {
	opts := []cluster.EmbeddedOption{cluster.WithDataDir(b.dataDir)}
	if b.port != 0 {
		opts = append(opts, cluster.WithPort(b.port))
	}
	e, err := cluster.StartEmbedded(opts...)
	if err != nil {
		t.Fatalf("start the embedded broker: %v", err)
	}
	b.embedded = e
}

// Restart stops the broker and starts it again with its data: the embedded
// one in-process, a real one with scripts/kafka restart.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	if b.embedded == nil {
		b.script(t, "restart")
		return
	}
	b.embedded.Close()
	b.start(t)
}

// Stop stops the broker until Start; a stopped broker refuses connections.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if b.embedded == nil {
		b.script(t, "stop")
		return
	}
	b.embedded.Close()
}

// Start starts a stopped broker again, with its data, on the same ports.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	if b.embedded == nil {
		b.script(t, "restart") // stop is a no-op; start reuses the ports
		return
	}
	b.start(t)
}

// script runs scripts/kafka COMMAND on the real broker.
func (b *Broker) script(t testing.TB, command string) {
	t.Helper()
	dir := os.Getenv(EnvKafkaDir)
	if dir == "" {
		t.Fatalf("scripts/kafka %s of the real broker needs $%s (scripts/test-kafka sets it)", command, EnvKafkaDir)
	}
	runScript(t, "kafka", command, "--dir", dir)
}

// runScript runs scripts/NAME ARGS... and returns its output, or fails the
// test with it.
func runScript(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(scriptPath(name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Cluster is an Apache Kafka cluster of several brokers that
// scripts/kafka-cluster runs for one test, on free ports in a temporary
// folder. Its brokers' node ids are 1 to N, as in Kafka's metadata.
type Cluster struct {
	dir string
}

// StartCluster starts a cluster of n brokers (each also a KRaft
// controller) and returns the configuration of a test on it, with
// replication min(n, 3) for the topics picstats creates. The cluster is
// killed when the test ends. It needs the Kafka jars of scripts/kafka
// fetch.
func StartCluster(t testing.TB, n int) (cluster.Config, *Cluster) {
	t.Helper()
	c := &Cluster{dir: t.TempDir()}
	t.Cleanup(func() {
		// SIGKILL: the data goes with the test, and a graceful stop of a
		// cluster that lost a broker waits 30 s for a quorum.
		start := time.Now()
		defer func() { t.Logf("cluster killed in %v", time.Since(start).Round(time.Millisecond)) }()
		for id := 1; id <= n; id++ {
			out, err := exec.Command(scriptPath("kafka-cluster"), "kill", strconv.Itoa(id), "--dir", c.dir).CombinedOutput()
			if err != nil {
				t.Logf("scripts/kafka-cluster kill %d: %v\n%s", id, err, out)
			}
		}
	})
	runScript(t, "kafka-cluster", "start", "--dir", c.dir, "--nodes", strconv.Itoa(n))
	brokers, err := cluster.ParseBrokers(strings.TrimSpace(runScript(t, "kafka-cluster", "brokers", "--dir", c.dir)))
	if err != nil {
		t.Fatalf("scripts/kafka-cluster brokers: %v", err)
	}
	cfg := config(t, brokers, true)
	cfg.Replication = min(n, 3)
	return cfg, c
}

// scriptPath is the path of scripts/NAME in this repository.
func scriptPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", name)
}

// Kill SIGKILLs broker id.
func (c *Cluster) Kill(t testing.TB, id int32) {
	t.Helper()
	runScript(t, "kafka-cluster", "kill", strconv.Itoa(int(id)), "--dir", c.dir)
}

// Restart starts broker id again with its data and ports, and waits until
// it answers metadata requests.
func (c *Cluster) Restart(t testing.TB, id int32) {
	t.Helper()
	runScript(t, "kafka-cluster", "restart", strconv.Itoa(int(id)), "--dir", c.dir)
}

func config(t testing.TB, brokers []string, real bool) cluster.Config {
	name := strings.ToLower(unsafe.ReplaceAllString(t.Name(), "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	prefix := fmt.Sprintf("t-%s-%06d.", name, rand.IntN(1_000_000))
	t.Logf("Kafka %v (real cluster: %v), topic prefix %q", brokers, real, prefix)
	return cluster.Config{
		Brokers:     brokers,
		Names:       cluster.DefaultNames(prefix),
		Partitions:  4,
		Replication: 1,
		Logger:      Logger(t),
	}
}

// Logger logs through t at warning level and above, so a failing test shows
// what the pipeline complained about. Lines logged after the test ended go
// to stderr, where testing cannot panic about them.
func Logger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { w.ended.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct {
	t     testing.TB
	ended atomic.Bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	if w.ended.Load() {
		return os.Stderr.Write(p)
	}
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
