package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/stats"
)

// TestRolesAsSeparateProcesses runs the pipeline the way docker-compose
// does: two processor processes, an API process and a datafeed process,
// each the built binary talking to the cluster. Then it reads the stats
// topic with the real tools people use (kafka-console-consumer and kcat)
// and checks they show what the API serves.
func TestRolesAsSeparateProcesses(t *testing.T) {
	cfg := testkafka.Start(t)
	bin := buildBinary(t)
	common := []string{"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix}
	role := func(name string, args ...string) []string { return append(append([]string{name}, common...), args...) }

	proc1 := startRole(t, bin, role("processor", "--partitions", "4")...)
	proc2 := startRole(t, bin, role("processor", "--partitions", "4")...)
	apiCmd, url := startBinary(t, bin, role("api", "--addr", "127.0.0.1:0")...)

	const n = 1000
	feeder := dieWithTest(exec.Command(bin, role("datafeed", "--partitions", "4", "--rate", "400", "--count", "1000", "--key", "picture_id")...))
	feeder.Dir = ".."
	if out, err := feeder.CombinedOutput(); err != nil {
		t.Fatalf("datafeed: %v\n%s", err, out)
	}

	// Ground truth, computed from what is on the picture topic.
	want := &feed{min: -1, rejected: map[codec.Reason]int64{}}
	for _, r := range readTopic(t, cfg, string(cfg.Names.Pictures)) {
		reg, err := codec.Decode(r.Value)
		if err != nil {
			t.Fatalf("the datafeed produced an invalid record %s: %v", r.Value, err)
		}
		if string(r.Key) != reg.PictureID {
			t.Fatalf("record key %q, want the picture id %q (--key picture_id)", r.Key, reg.PictureID)
		}
		want.add(&feed{count: 1, sum: reg.Weight, min: reg.Weight, max: reg.Weight})
	}
	if want.count != n {
		t.Fatalf("picture topic holds %d records, want %d", want.count, n)
	}
	waitForTotal(t, url, n, 2*time.Minute)
	assertExact(t, url, want)

	t.Run("kafka-console-consumer", func(t *testing.T) {
		requireRealKafka(t)
		cmd := exec.Command("../scripts/kafka", "console-consumer", "--bootstrap-server", cfg.Brokers[0],
			"--topic", string(cfg.Names.Stats), "--from-beginning", "--property", "print.key=true", "--timeout-ms", "10000")
		assertPrintsTheAPI(t, cmd, url)
	})
	t.Run("kcat", func(t *testing.T) {
		requireRealKafka(t)
		requireTool(t, "kcat")
		cmd := exec.Command("kcat", "-b", cfg.Brokers[0], "-C", "-t", string(cfg.Names.Stats), "-o", "beginning", "-e", "-q", "-f", `%k\t%s\n`)
		assertPrintsTheAPI(t, cmd, url)
	})

	for _, c := range []*exec.Cmd{proc1, proc2, apiCmd} {
		stopGracefully(t, c)
	}
}

// assertPrintsTheAPI runs a tool that prints "<key>\t<value>" lines of the
// stats topic and checks that the latest value of every statistic is the
// JSON the API serves. A statistic is published when it changes, so one
// that never changed (rejected, with no bad records) may be absent: then the
// API must serve its empty result.
func assertPrintsTheAPI(t *testing.T, cmd *exec.Cmd, url string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.String())
	}
	latest := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("line %q is not <key>\\t<value>", sc.Text())
		}
		latest[key] = value
	}
	for _, k := range stats.All() {
		var fromAPI json.RawMessage
		if _, err := getJSON(url+"/api/stats/"+k.Name, &fromAPI); err != nil {
			t.Fatal(err)
		}
		got, printed := latest[k.Name]
		if !printed {
			empty, _ := json.Marshal(k.New().Result())
			got = string(empty)
		}
		if got != strings.TrimSpace(string(fromAPI)) {
			t.Errorf("%s printed %s = %s (printed: %v), the API serves %s", cmd.Args[0], k.Name, got, printed, fromAPI)
		}
	}
	t.Logf("%s printed %d lines; the latest of each statistic equals the API", cmd.Args[0], strings.Count(string(out), "\n"))
}

// requireRealKafka skips a test that needs Apache Kafka and the project's
// scripts/kafka tools, unless PICSTATS_REQUIRE_REAL is set (as CI does), in
// which case running without them fails.
func requireRealKafka(t *testing.T) {
	t.Helper()
	if testkafka.Real() {
		return
	}
	if os.Getenv("PICSTATS_REQUIRE_REAL") != "" {
		t.Fatalf("PICSTATS_REQUIRE_REAL is set but %s is not", testkafka.EnvBrokers)
	}
	t.Skipf("needs Apache Kafka: run scripts/kafka start and set %s (CI does)", testkafka.EnvBrokers)
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("PICSTATS_REQUIRE_REAL") != "" {
			t.Fatalf("%s is not installed (apt-get install %s)", name, name)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, name)
	}
}

// startRole runs a role of the binary in the background until the test ends.
func startRole(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := dieWithTest(exec.Command(bin, args...))
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// stopGracefully sends SIGTERM and expects exit status 0 within 30 s.
func stopGracefully(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM, want 0", cmd.Args[1], err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not exit within 30 s of SIGTERM", cmd.Args[1])
	}
}
