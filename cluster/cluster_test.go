package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/testkafka"
)

func TestParseBrokers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"kafka:9092", []string{"kafka:9092"}, ""},
		{" a:1, b:2 ,", []string{"a:1", "b:2"}, ""},
		{"[::1]:9092", []string{"[::1]:9092"}, ""},
		{"", nil, "no broker"},
		{" , ", nil, "no broker"},
		{"localhost", nil, `"localhost": want host:port`},
		{"a:1,:2", nil, `":2": want host:port`},
		{"a:", nil, `"a:": want host:port`},
	}
	for _, tt := range tests {
		got, err := cluster.ParseBrokers(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseBrokers(%q) error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseBrokers(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestEnsureTopicsIsIdempotent creates the topics twice: the second run must
// succeed and change nothing.
func TestEnsureTopicsIsIdempotent(t *testing.T) {
	cfg := testkafka.Start(t)
	cfg.Partitions = 3
	for range 2 {
		if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	n := cfg.Names
	all := []string{string(n.Pictures), string(n.Stats), string(n.Rejected), string(n.Snapshots()), string(n.Table())}
	details, err := adm.ListTopics(context.Background(), all...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range all {
		if d := details[name]; d.Err != nil || len(d.Partitions) != 3 {
			t.Errorf("topic %s: %d partitions, err %v; want 3", name, len(d.Partitions), d.Err)
		}
	}
	for topic, want := range map[string]string{string(n.Stats): "compact", string(n.Table()): "compact", string(n.Pictures): "delete"} {
		cfgs, err := adm.DescribeTopicConfigs(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := cfgs.On(topic, nil)
		if err != nil {
			t.Fatal(err)
		}
		policy := "delete" // Kafka's default when not set
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		if policy != want {
			t.Errorf("topic %s cleanup.policy = %s, want %s", topic, policy, want)
		}
	}
}

// The membership reaches the table stage's sarama group config, which
// sarama must accept (static membership needs the pinned protocol 2.3);
// the zero value means the defaults.
func TestMembershipReachesTheSaramaGroup(t *testing.T) {
	for _, tt := range []struct {
		m                  cluster.Membership
		session, heartbeat time.Duration
		instance           string
	}{
		{cluster.Membership{}, cluster.DefaultSessionTimeout, cluster.DefaultHeartbeatInterval, ""},
		{cluster.Membership{SessionTimeout: 7 * time.Second, HeartbeatInterval: 300 * time.Millisecond, InstanceID: "proc-1"}, 7 * time.Second, 300 * time.Millisecond, "proc-1"},
	} {
		cfg := cluster.Config{Membership: tt.m}.Sarama()
		g := cfg.Consumer.Group
		if g.Session.Timeout != tt.session || g.Rebalance.Timeout != tt.session || g.Heartbeat.Interval != tt.heartbeat || g.InstanceId != tt.instance {
			t.Errorf("%+v: session %v, rebalance %v, heartbeat %v, instance %q", tt.m, g.Session.Timeout, g.Rebalance.Timeout, g.Heartbeat.Interval, g.InstanceId)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: sarama refuses the config: %v", tt.m, err)
		}
	}
	for _, bad := range []cluster.Membership{
		{SessionTimeout: time.Second, HeartbeatInterval: time.Second},
		{HeartbeatInterval: 11 * time.Second},
		{SessionTimeout: -time.Second},
		{SessionTimeout: 1500 * time.Microsecond},
		{InstanceID: "a b"},
		{InstanceID: ".."},
		{InstanceID: strings.Repeat("x", 250)},
	} {
		if bad.Check() == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	if err := (cluster.Membership{InstanceID: strings.Repeat("x", 249)}).Check(); err != nil {
		t.Errorf("a 249-character id: %v", err)
	}
}
