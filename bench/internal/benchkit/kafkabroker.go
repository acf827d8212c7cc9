package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka is an Apache Kafka 4.1.1 broker that StartKafka started.
type Kafka struct {
	Broker string       // host:port
	Adm    *kadm.Client // connected to Broker
	dir    string
	cl     *kgo.Client
}

// StartKafka starts Apache Kafka with scripts/kafka on free ports in dir
// (run from the module root) and connects an admin client to it. It
// creates __consumer_offsets up front: the first group on a fresh broker
// creates it (50 partitions, seconds), which would otherwise land in the
// first thing measured. The returned Kafka is never nil and must be
// stopped, also on error.
func StartKafka(ctx context.Context, dir string) (*Kafka, error) {
	k := &Kafka{dir: dir}
	ports, err := FreePorts(3)
	if err != nil {
		return k, err
	}
	k.Broker = fmt.Sprintf("127.0.0.1:%d", ports[0])
	fmt.Printf("starting Kafka 4.1.1 at %s…\n", k.Broker)
	if err := Run(ctx, "scripts/kafka", "start", "--dir", dir, "--port", fmt.Sprint(ports[0]),
		"--external-port", fmt.Sprint(ports[1]), "--controller-port", fmt.Sprint(ports[2])); err != nil {
		return k, fmt.Errorf("kafka start: %w", err)
	}
	if k.cl, err = kgo.NewClient(kgo.SeedBrokers(k.Broker)); err != nil {
		return k, err
	}
	k.Adm = kadm.NewClient(k.cl)
	const warm = "bench.warmup"
	if _, err := k.Adm.CreateTopic(ctx, 1, 1, nil, warm); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return k, err
	}
	var o kadm.Offsets
	o.Add(kadm.Offset{Topic: warm, Partition: 0, At: 0, LeaderEpoch: -1})
	if err := Poll(ctx, 2*time.Minute, 200*time.Millisecond, func() error { return k.Adm.CommitAllOffsets(ctx, warm, o) }); err != nil {
		return k, fmt.Errorf("creating __consumer_offsets: %w", err)
	}
	_, _ = k.Adm.DeleteGroups(ctx, warm)
	_, _ = k.Adm.DeleteTopics(ctx, warm)
	return k, nil
}

// Stop stops the broker; its log is moved to logs/kafka-broker.log unless
// logs is "".
func (k *Kafka) Stop(logs string) {
	if k.cl != nil {
		k.cl.Close()
	}
	_ = Run(context.Background(), "scripts/kafka", "stop", "--dir", k.dir) // ctx may be cancelled (Ctrl-C)
	if logs != "" {
		_ = os.Rename(filepath.Join(k.dir, "broker.log"), filepath.Join(logs, "kafka-broker.log"))
	}
}
