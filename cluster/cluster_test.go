package cluster

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
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
		got, err := ParseBrokers(tt.in)
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

// TestEnsureTopicsIsIdempotent creates the topics twice on the embedded
// broker: the second run must succeed and change nothing.
func TestEnsureTopicsIsIdempotent(t *testing.T) {
	e, err := StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cfg := Config{Brokers: e.Brokers(), Names: DefaultNames("x."), Partitions: 3, Replication: 1}
	for range 2 {
		if err := EnsureTopics(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(context.Background(), "x.picture", "x.stats", "x.picture.rejected")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x.picture", "x.stats", "x.picture.rejected"} {
		if d := details[name]; d.Err != nil || len(d.Partitions) != 3 {
			t.Errorf("topic %s: %d partitions, err %v; want 3", name, len(d.Partitions), d.Err)
		}
	}
	cfgs, err := adm.DescribeTopicConfigs(context.Background(), "x.stats")
	if err != nil {
		t.Fatal(err)
	}
	policy, err := cfgs.On("x.stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range policy.Configs {
		if c.Key == "cleanup.policy" && (c.Value == nil || *c.Value != "compact") {
			t.Errorf("stats topic cleanup.policy = %v, want compact", c.MaybeValue())
		}
	}
}
