package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/datafeed"
	"github.com/picstats/picstats/stats"
)

// roleFlagNames are the flags each role uses, and so the only ones its
// --help lists and it accepts.
var roleFlagNames = map[string][]string{
	"all": {"log-level", "log-format", "brokers", "topic-prefix", "partitions", "replication", "embedded-port",
		"stats", "addr", "max-conns", "stale-after", "wedged-after", "allowed-origins", "images",
		"rate", "count", "key", "batch-size", "snapshot-interval", "metrics-addr", "windows", "window-snapshot-interval",
		"session-timeout", "heartbeat-interval", "instance-id"},
	"processor": {"log-level", "log-format", "brokers", "topic-prefix", "partitions", "replication",
		"stats", "batch-size", "snapshot-interval", "metrics-addr", "windows", "window-snapshot-interval",
		"session-timeout", "heartbeat-interval", "instance-id"},
	"api": {"log-level", "log-format", "brokers", "topic-prefix",
		"stats", "windows", "addr", "max-conns", "stale-after", "wedged-after", "allowed-origins", "images"},
	"datafeed": {"log-level", "log-format", "brokers", "topic-prefix", "partitions", "replication",
		"images", "rate", "count", "key"},
	"tail":  {"log-level", "log-format", "brokers", "topic-prefix", "topic", "from-beginning", "count"},
	"probe": {"log-level", "log-format", "url", "timeout"},
}

// validValue is a valid value of each flag, for the refusal test.
var validValue = map[string]string{
	"log-level": "debug", "log-format": "json", "brokers": "h:1", "topic-prefix": "p.", "partitions": "2",
	"replication": "3", "embedded-port": "19192", "stats": "count", "addr": ":0", "max-conns": "5",
	"stale-after": "1s", "wedged-after": "1s", "allowed-origins": "*", "images": "images", "rate": "5",
	"count": "5", "key": "picture_id", "batch-size": "7", "snapshot-interval": "1s", "topic": "stats", "windows": "1h=24h", "window-snapshot-interval": "2s",
	"from-beginning": "false", "url": "http://h:1/", "timeout": "1s", "metrics-addr": ":9100",
	"session-timeout": "6s", "heartbeat-interval": "1s", "instance-id": "p-1",
}

var helpFlag = regexp.MustCompile(`(?m)^  -([a-z-]+)`)

// helpFlags runs picstats role --help and returns the flags it lists.
func helpFlags(t *testing.T, role string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{role, "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("picstats %s --help: exit status %d, want 0\n%s", role, code, stderr.String())
	}
	var names []string
	for _, m := range helpFlag.FindAllStringSubmatch(stderr.String(), -1) {
		names = append(names, m[1])
	}
	return names
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestRolesListExactlyTheirFlags checks that each role's --help lists
// exactly the flags the role uses, and that every role has a flag set.
func TestRolesListExactlyTheirFlags(t *testing.T) {
	for _, role := range roleOrder {
		t.Run(role, func(t *testing.T) {
			want, ok := roleFlagNames[role]
			if !ok {
				t.Fatalf("the test does not know the flags of role %s", role)
			}
			if got := helpFlags(t, role); !slices.Equal(got, sorted(want)) {
				t.Errorf("picstats %s --help lists\n  %v\nwant\n  %v", role, got, sorted(want))
			}
		})
	}
	if len(roles) != len(roleOrder) || len(roleFlags) != len(roles) {
		t.Errorf("%d roles, %d in the usage order, %d with flags: want one list of roles", len(roles), len(roleOrder), len(roleFlags))
	}
}

// TestRolesRefuseFlagsTheyDoNotUse checks that a flag of another role is
// refused with exit status 2, a message naming it and the --help hint.
func TestRolesRefuseFlagsTheyDoNotUse(t *testing.T) {
	t.Setenv("KAFKA_BROKER", "h:1")
	every := map[string]bool{}
	for _, names := range roleFlagNames {
		for _, n := range names {
			every[n] = true
		}
	}
	for _, role := range roleOrder {
		for _, flag := range sorted(mapKeys(every)) {
			if slices.Contains(roleFlagNames[role], flag) {
				continue
			}
			t.Run(role+"/"+flag, func(t *testing.T) {
				value, ok := validValue[flag]
				if !ok {
					t.Fatalf("the test has no valid value of --%s", flag)
				}
				// The bad --log-level stops picstats should it accept the flag.
				var stderr bytes.Buffer
				code := run([]string{role, "--" + flag + "=" + value, "--log-level=bogus"}, io.Discard, &stderr)
				if code != 2 {
					t.Fatalf("picstats %s --%s=%s: exit status %d, want 2\n%s", role, flag, value, code, stderr.String())
				}
				for _, want := range []string{
					"flag provided but not defined: -" + flag + "\n",
					"Run 'picstats " + role + " --help' for the flags.",
				} {
					if !strings.Contains(stderr.String(), want) {
						t.Errorf("picstats %s --%s: output does not say %q:\n%s", role, flag, want, stderr.String())
					}
				}
			})
		}
	}
}

func mapKeys(m map[string]bool) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// TestRolesParseValidValues checks that each role's flags reach the
// options the run functions read, and the defaults where none is given.
func TestRolesParseValidValues(t *testing.T) {
	images := t.TempDir()
	tests := []struct {
		name   string
		broker string // $KAFKA_BROKER
		args   []string
		check  func(t *testing.T, o *options)
	}{
		{"all, defaults", "", []string{"all"}, func(t *testing.T, o *options) {
			expect(t, "brokers (none: the embedded broker)", len(o.cluster.Brokers), 0)
			expect(t, "partitions", o.cluster.Partitions, 4)
			expect(t, "replication", o.cluster.Replication, 1)
			expect(t, "embedded port", o.embeddedPort, 0)
			expect(t, "addr", o.addr, ":8080")
			expect(t, "images", o.feed.Images, "images")
			expect(t, "key", o.feed.Key, datafeed.KeyNone)
			expect(t, "stats", len(o.stats), len(stats.All()))
			expect(t, "batch size", o.batchSize, int64(10_000))
			expect(t, "snapshot interval", o.snapshotInterval, 5*time.Millisecond)
			expect(t, "stale after", o.staleAfter, 3*time.Second)
			expect(t, "wedged after", o.wedgedAfter, 30*time.Second)
			expect(t, "metrics addr (none)", o.metricsAddr, "")
			expect(t, "membership (the defaults)", o.cluster.Membership, cluster.Membership{SessionTimeout: 10 * time.Second, HeartbeatInterval: 250 * time.Millisecond})
		}},
		{"all", "", []string{"all", "--brokers", "a:1,b:2", "--topic-prefix", "x.", "--partitions", "8", "--replication", "3",
			"--embedded-port", "19192", "--stats", "count,min_weight", "--addr", "127.0.0.1:0", "--max-conns", "9",
			"--stale-after", "2s", "--wedged-after", "4s", "--allowed-origins", "https://a.example, *", "--images", images,
			"--rate", "2.5", "--count", "7", "--key", "picture_id", "--batch-size", "11", "--snapshot-interval", "5ms",
			"--log-level", "debug", "--log-format", "json"}, func(t *testing.T, o *options) {
			expect(t, "brokers", strings.Join(o.cluster.Brokers, ","), "a:1,b:2")
			expect(t, "group", string(o.cluster.Names.Group), "x.picstats")
			expect(t, "partitions", o.cluster.Partitions, 8)
			expect(t, "replication", o.cluster.Replication, 3)
			expect(t, "embedded port", o.embeddedPort, 19192)
			expect(t, "stats", strings.Join(stats.Names(o.stats), ","), "count,min_weight")
			expect(t, "addr", o.addr, "127.0.0.1:0")
			expect(t, "max conns", o.maxConns, 9)
			expect(t, "stale after", o.staleAfter, 2*time.Second)
			expect(t, "wedged after", o.wedgedAfter, 4*time.Second)
			expect(t, "allowed origins", strings.Join(o.allowedOrigins, " "), "https://a.example *")
			expect(t, "images", o.feed.Images, images)
			expect(t, "rate", o.feed.Rate, 2.5)
			expect(t, "count", o.feed.Count, 7)
			expect(t, "key", o.feed.Key, datafeed.KeyPictureID)
			expect(t, "batch size", o.batchSize, int64(11))
			expect(t, "snapshot interval", o.snapshotInterval, 5*time.Millisecond)
			expect(t, "debug logging", o.logger.Enabled(t.Context(), slog.LevelDebug), true)
			expect(t, "cluster logger", o.cluster.Logger, o.logger)
		}},
		{"processor", "env:9092", []string{"processor", "--topic-prefix", "x.", "--partitions", "2", "--replication", "3",
			"--stats", "all,-count", "--batch-size", "5", "--snapshot-interval", "1s", "--metrics-addr", ":9100",
			"--session-timeout", "6s", "--heartbeat-interval", "500ms", "--instance-id", "proc-1.a_b"}, func(t *testing.T, o *options) {
			expect(t, "membership", o.cluster.Membership, cluster.Membership{SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond, InstanceID: "proc-1.a_b"})
			expect(t, "metrics addr", o.metricsAddr, ":9100")
			expect(t, "brokers from $KAFKA_BROKER", strings.Join(o.cluster.Brokers, ","), "env:9092")
			expect(t, "picture topic", string(o.cluster.Names.Pictures), "x.picture")
			expect(t, "partitions", o.cluster.Partitions, 2)
			expect(t, "replication", o.cluster.Replication, 3)
			expect(t, "stats", slices.Contains(stats.Names(o.stats), "count"), false)
			expect(t, "stats", len(o.stats), len(stats.All())-1)
			expect(t, "batch size", o.batchSize, int64(5))
			expect(t, "snapshot interval", o.snapshotInterval, time.Second)
		}},
		{"api", "env:9092", []string{"api", "--brokers", "a:1", "--stats", "count", "--addr", ":9", "--max-conns", "3",
			"--stale-after", "1s", "--wedged-after", "2s", "--allowed-origins", "http://localhost:3000",
			"--images", "/nonexistent"}, func(t *testing.T, o *options) {
			expect(t, "brokers", strings.Join(o.cluster.Brokers, ","), "a:1")
			expect(t, "stats", strings.Join(stats.Names(o.stats), ","), "count")
			expect(t, "addr", o.addr, ":9")
			expect(t, "max conns", o.maxConns, 3)
			expect(t, "stale after", o.staleAfter, time.Second)
			expect(t, "wedged after", o.wedgedAfter, 2*time.Second)
			expect(t, "allowed origins", strings.Join(o.allowedOrigins, " "), "http://localhost:3000")
			expect(t, "images (missing: only a warning)", o.feed.Images, "/nonexistent")
		}},
		{"datafeed", "env:9092", []string{"datafeed", "--partitions", "6", "--replication", "2", "--images", images,
			"--rate", "10", "--count", "100", "--key", "picture_id"}, func(t *testing.T, o *options) {
			expect(t, "partitions", o.cluster.Partitions, 6)
			expect(t, "replication", o.cluster.Replication, 2)
			expect(t, "images", o.feed.Images, images)
			expect(t, "rate", o.feed.Rate, 10.0)
			expect(t, "count", o.feed.Count, 100)
			expect(t, "key", o.feed.Key, datafeed.KeyPictureID)
		}},
		{"tail, defaults", "env:9092", []string{"tail", "--topic-prefix", "x."}, func(t *testing.T, o *options) {
			expect(t, "topic", o.tail.Topic, "x.picture")
			expect(t, "from beginning", o.tail.FromBeginning, true)
			expect(t, "count", o.tail.Count, 0)
		}},
		{"tail", "env:9092", []string{"tail", "--topic", "stats", "--from-beginning=false", "--count", "3"}, func(t *testing.T, o *options) {
			expect(t, "topic", o.tail.Topic, "stats")
			expect(t, "from beginning", o.tail.FromBeginning, false)
			expect(t, "count", o.tail.Count, 3)
		}},
		{"probe", "env:9092", []string{"probe", "--url", "http://h:1/healthz", "--timeout", "500ms"}, func(t *testing.T, o *options) {
			expect(t, "url", o.probeURL, "http://h:1/healthz")
			expect(t, "timeout", o.probeTimeout, 500*time.Millisecond)
		}},
		{"probe, defaults", "env:9092", []string{"probe"}, func(t *testing.T, o *options) {
			expect(t, "url", o.probeURL, "http://127.0.0.1:8080/readyz")
			expect(t, "timeout", o.probeTimeout, 3*time.Second)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KAFKA_BROKER", tt.broker)
			tt.check(t, mustParse(t, tt.args[0], tt.args[1:]...))
		})
	}
}

func mustParse(t *testing.T, role string, args ...string) *options {
	t.Helper()
	var stderr bytes.Buffer
	o, err := parseFlags(role, roles[role].summary, args, io.Discard, &stderr)
	if err != nil {
		t.Fatalf("picstats %s %s: %v\n%s", role, strings.Join(args, " "), err, stderr.String())
	}
	return o
}

func expect[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

// TestREADMEFlagTableIsExact checks the roles column of the README's flag
// table against each role's flag set, and that the table has every flag.
func TestREADMEFlagTableIsExact(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n| flag | roles | default | meaning |\n|---|---|---|---|\n")
	if !ok {
		t.Fatal("README has no flag table (| flag | roles | default | meaning |)")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	readmeFlags := map[string][]string{} // role: flags
	listed := map[string]bool{}
	flagName := regexp.MustCompile("`--([a-z-]+)`")
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) < 4 {
			t.Fatalf("README flag table row %q: want | flag | roles | default | meaning |", line)
		}
		var rowRoles []string
		if cells[1] == "every role" {
			rowRoles = roleOrder
		} else {
			for r := range strings.SplitSeq(cells[1], ", ") {
				if _, ok := roles[r]; !ok {
					t.Errorf("README flag table row %q: %q is not a role (write \"every role\" or a list of roles)", line, r)
				}
				rowRoles = append(rowRoles, r)
			}
		}
		for _, m := range flagName.FindAllStringSubmatch(cells[0], -1) {
			if listed[m[1]] {
				t.Errorf("README flag table lists --%s twice", m[1])
			}
			listed[m[1]] = true
			for _, r := range rowRoles {
				readmeFlags[r] = append(readmeFlags[r], m[1])
			}
		}
	}
	for _, role := range roleOrder {
		if got, want := sorted(readmeFlags[role]), helpFlags(t, role); !slices.Equal(got, want) {
			t.Errorf("README's flag table gives %s\n  %v\nbut picstats %s --help lists\n  %v", role, got, role, want)
		}
	}
}

// TestBadWindowFlagsSayWhatToFix: a bad --windows,
// --window-snapshot-interval or group membership flag stops picstats with exit status 2 and a
// message naming the flag and what it wants.
func TestBadWindowFlagsSayWhatToFix(t *testing.T) {
	t.Setenv("KAFKA_BROKER", "h:1")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"processor", "--windows", "1h"}, "--windows"},
		{[]string{"processor", "--windows", "1h=90m"}, "multiple of the window size"},
		{[]string{"api", "--windows", "1h=48h,1h=24h"}, "given twice"},
		{[]string{"api", "--windows", "0s=1h"}, "at least 1s"},
		{[]string{"all", "--windows", "1d=xd"}, "whole number of days"},
		{[]string{"processor", "--window-snapshot-interval", "2ms"}, "want at least --snapshot-interval"},
		{[]string{"processor", "--session-timeout", "1s", "--heartbeat-interval", "1s"}, "want less than the session timeout"},
		{[]string{"all", "--heartbeat-interval", "-1s"}, "heartbeat interval -1s"},
		{[]string{"processor", "--session-timeout", "1500us"}, "whole number of milliseconds"},
		{[]string{"processor", "--instance-id", "a/b"}, `instance id "a/b"`},
	} {
		var stderr bytes.Buffer
		code := run(append(c.args, "--log-level=error"), io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("picstats %v: exit status %d, output %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}
