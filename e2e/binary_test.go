package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/picstats/picstats/internal/await"
)

// buildBinary builds the picstats command once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "picstats")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// startBinary runs picstats with args from the repository root, as the
// README does, and returns the API URL it prints.
func startBinary(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := dieWithTest(exec.Command(bin, args...))
	cmd.Dir = ".."
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case url := <-urls:
		return cmd, url
	case <-time.After(30 * time.Second):
		t.Fatal("picstats printed no URL within 30 s")
		return nil, ""
	}
}

// TestTheREADMECommandServesAGrowingCount runs the built binary the way the
// README's run command does and waits for a non-zero count from the API,
// then stops it with SIGTERM and expects a clean, quick exit.
func TestTheREADMECommandServesAGrowingCount(t *testing.T) {
	bin := buildBinary(t)
	start := time.Now()
	cmd, url := startBinary(t, bin, "--addr", "127.0.0.1:0", "--rate", "100")

	count := func() int64 {
		var c struct {
			Registrations int64 `json:"registrations"`
		}
		if status, err := getJSON(url+"/api/stats/count", &c); err != nil || status != http.StatusOK {
			return 0
		}
		return c.Registrations
	}
	var first int64
	await.True(t, 60*time.Second, "a non-zero count", func() bool { first = count(); return first > 0 })
	t.Logf("first non-zero count (%d) %v after start", first, time.Since(start).Round(time.Millisecond))
	await.True(t, 30*time.Second, fmt.Sprintf("the count to grow past %d", first), func() bool { return count() > first })

	stopAt := time.Now()
	stopGracefully(t, cmd)
	t.Logf("exited %v after SIGTERM", time.Since(stopAt).Round(time.Millisecond))
}

// TestBadFlagsSayWhatToFix checks that a bad command line stops picstats
// with exit status 2 and a message naming the flag.
func TestBadFlagsSayWhatToFix(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "-3"}, "--rate -3: want 0"},
		{[]string{"--key", "user"}, `--key: key "user": want "none" or "picture_id"`},
		{[]string{"--images", "/nonexistent"}, "--images /nonexistent: not a folder"},
		{[]string{"processor"}, "no Kafka cluster given"},
		{[]string{"api", "--brokers", "localhost"}, `broker "localhost": want host:port`},
		{[]string{"frobnicate"}, `unknown subcommand "frobnicate"`},
		{[]string{"tail", "--brokers", "h:1", "--rate", "3"}, "flag provided but not defined: -rate"},
		// Only the roles that create topics take --partitions and --replication.
		{[]string{"api", "--brokers", "h:1", "--partitions", "4"}, "flag provided but not defined: -partitions\nUsage: picstats api"},
		{[]string{"tail", "--brokers", "h:1", "--replication", "3"}, "picstats tail: flag provided but not defined: -replication\nRun 'picstats tail --help' for the flags."},
		{[]string{"probe", "--brokers", "h:1"}, "picstats probe: flag provided but not defined: -brokers\nRun 'picstats probe --help' for the flags."},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"api", "--brokers", "h:1", "--allowed-origins", "localhost:3000"}, `--allowed-origins: "localhost:3000" is not an origin`},
		{[]string{"api", "--brokers", "h:1", "--stats", "count,median"}, `--stats: unknown statistic "median" (known: average_weight, count,`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = ".."
			out, err := cmd.CombinedOutput()
			exit, ok := err.(*exec.ExitError)
			if !ok || exit.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !regexp.MustCompile(regexp.QuoteMeta(tt.want)).Match(out) {
				t.Fatalf("output does not say %q:\n%s", tt.want, out)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("picstats: %s", p)
	return len(p), nil
}
