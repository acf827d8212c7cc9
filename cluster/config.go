// Package cluster connects picstats to Kafka: the names of its topics
// (names.go), the client configuration that works with both Apache Kafka and
// the embedded kfake broker (config.go), creation of the topics picstats
// owns (topics.go), and the embedded broker itself (embedded.go).
package cluster

import (
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says how to reach the cluster and how to create topics on it.
type Config struct {
	Brokers     []string
	Names       Names
	Partitions  int // of the topics picstats creates; an existing picture topic keeps its own
	Replication int // replication factor of every topic picstats creates
	Logger      *slog.Logger
}

// ParseBrokers splits a comma-separated broker list and checks each entry is
// host:port.
func ParseBrokers(s string) ([]string, error) {
	var brokers []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		i := strings.LastIndex(b, ":")
		if i <= 0 || i == len(b)-1 {
			return nil, fmt.Errorf("broker %q: want host:port", b)
		}
		brokers = append(brokers, b)
	}
	if len(brokers) == 0 {
		return nil, errors.New("no broker address given")
	}
	return brokers, nil
}

// ClientID is the Kafka client id of picstats' clients (goka adds its own
// suffixes).
const ClientID = "picstats"

// Sarama returns the client configuration goka uses.
func (c Config) Sarama() *sarama.Config {
	cfg := goka.DefaultConfig()
	// kfake cannot serve sarama's OffsetFetch v6+ (protocol 2.4 and later);
	// Apache Kafka 4 accepts 2.1 and later, so 2.3 serves both.
	cfg.Version = sarama.V2_3_0_0
	cfg.ClientID = ClientID
	// goka starts new groups at the newest offset, which would silently skip
	// registrations produced before the processor first started.
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	// sarama's 100 ms default flush dominated produce-to-view latency.
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	// One request in flight per broker: snapshots and table updates reach
	// Kafka in the order they were sent, also across retries, which the
	// engine's exactness relies on. Retries may duplicate a message; every
	// write picstats makes is harmless to repeat, so idempotence (which
	// kfake does not carry across a restart) is not needed.
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.MaxMessageBytes = MaxStateBytes
	cfg.Net.MaxOpenRequests = 1
	// Ride out a broker restart or a leader move (about 15 s) instead of
	// failing the processor.
	cfg.Producer.Retry.Max = 30
	cfg.Producer.Retry.Backoff = 500 * time.Millisecond
	// A SIGTERM during JoinGroup waits for the rebalance timeout.
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// The builders below give every client a sarama config of its own. Goka's
// *WithConfig builders write the client id into the config they are given,
// so a shared config is written by one builder while the clients made
// before it read it: a data race the race detector found in CI.

// ProducerBuilder builds goka producers for this cluster.
func (c Config) ProducerBuilder() goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		return goka.ProducerBuilderWithConfig(c.Sarama())(brokers, clientID, hasher)
	}
}

// ConsumerGroupBuilder builds sarama consumer groups for this cluster.
func (c Config) ConsumerGroupBuilder() goka.ConsumerGroupBuilder {
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		return goka.ConsumerGroupBuilderWithConfig(c.Sarama())(brokers, group, clientID)
	}
}

func (c Config) consumerBuilder() goka.SaramaConsumerBuilder {
	return func(brokers []string, clientID string) (sarama.Consumer, error) {
		return goka.SaramaConsumerBuilderWithConfig(c.Sarama())(brokers, clientID)
	}
}

func (c Config) topicManager() goka.TopicManagerBuilder {
	return func(brokers []string) (goka.TopicManager, error) {
		tm := goka.NewTopicManagerConfig()
		tm.Table.Replication = c.Replication
		tm.Stream.Replication = c.Replication
		m, err := goka.NewTopicManager(brokers, c.Sarama(), tm)
		if err != nil {
			return nil, err
		}
		return retryingTopicManager{TopicManager: m, wait: OffsetWait}, nil
	}
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// ProcessorOptions configures a goka processor for this cluster, but for its
// consumer group, which the caller wraps (see processor.Run). The group
// table lives in memory: it holds one small value per statistic and is
// rebuilt from its compacted changelog at start, so a local disk cache would
// only add a way to go stale.
func (c Config) ProcessorOptions() []goka.ProcessorOption {
	return []goka.ProcessorOption{
		goka.WithConsumerSaramaBuilder(c.consumerBuilder()),
		goka.WithProducerBuilder(c.ProducerBuilder()),
		goka.WithTopicManagerBuilder(c.topicManager()),
		goka.WithStorageBuilder(storage.MemoryBuilder()),
		goka.WithLogger(gokaLogger{c.logger()}),
	}
}

// ViewOptions configures a goka view of the group table for this cluster.
func (c Config) ViewOptions() []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewConsumerSaramaBuilder(c.consumerBuilder()),
		goka.WithViewTopicManagerBuilder(c.topicManager()),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewLogger(gokaLogger{c.logger()}),
		goka.WithViewAutoReconnect(),
		// goka's default backoff after a failed load grows in steps of 10 s
		// up to 2 min, and the partition stays Running meanwhile: a
		// restarted broker would be picked up minutes late. Retry at once,
		// then every 0.5–2 s.
		goka.WithViewBackoffBuilder(func() (goka.Backoff, error) {
			return goka.NewSimpleBackoff(500*time.Millisecond, 2*time.Second), nil
		}),
		goka.WithViewBackoffResetTimeout(10 * time.Second),
	}
}

// Client returns a franz-go client for this cluster, used for the
// processor's input stage, the datafeed, the tail command and
// administration.
func (c Config) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", c.Brokers, err)
	}
	return cl, nil
}

// gokaLogger sends goka's chatter to slog at debug level; goka reports the
// errors that matter through the return values of Run.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)                 { g.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), "from", "goka") }
func (g gokaLogger) Println(v ...any)               { g.Print(v...) }
func (g gokaLogger) Printf(format string, v ...any) { g.Print(fmt.Sprintf(format, v...)) }
