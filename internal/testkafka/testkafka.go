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
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/picstats/picstats/cluster"
)

// EnvBrokers names the environment variable that selects a real cluster.
const EnvBrokers = "PICSTATS_TEST_BROKERS"

// Real reports whether tests run against the cluster in $PICSTATS_TEST_BROKERS.
func Real() bool { return os.Getenv(EnvBrokers) != "" }

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9]+`)

// Start returns the configuration of a cluster for this test, with names no
// other test uses.
func Start(t testing.TB) cluster.Config {
	t.Helper()
	var brokers []string
	if env := os.Getenv(EnvBrokers); env != "" {
		var err error
		if brokers, err = cluster.ParseBrokers(env); err != nil {
			t.Fatalf("$%s: %v", EnvBrokers, err)
		}
	} else {
		e, err := cluster.StartEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		brokers = e.Brokers()
	}
	name := strings.ToLower(unsafe.ReplaceAllString(t.Name(), "-"))
	if len(name) > 40 {
		name = name[:40]
	}
	prefix := fmt.Sprintf("t-%s-%06d.", name, rand.IntN(1_000_000))
	t.Logf("Kafka %v (real cluster: %v), topic prefix %q", brokers, Real(), prefix)
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
