// Package cluster connects picstats to Kafka: the names of its topics
// (names.go), the client configuration that works with both Apache Kafka and
// the embedded kfake broker (config.go), creation of the topics picstats
// owns (topics.go), and the embedded broker itself (embedded.go).
package cluster

import (
	"cmp"
	"context"
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
	Membership  Membership // of the processor's consumer groups
}

// Membership says how a processor takes part in its two consumer groups
// (the input stage's franz-go group and the table stage's goka group).
// The zero value means the defaults.
type Membership struct {
	// SessionTimeout: a member that sends no heartbeat for this long is
	// dropped and its partitions go to the others (a SIGKILLed processor's
	// partitions stand still this long). Also the rebalance timeout: how
	// long a rebalance waits for the members to rejoin.
	SessionTimeout time.Duration
	// HeartbeatInterval: how often a member asks the coordinator whether
	// a rebalance has begun; the others join a rebalance at most this late.
	HeartbeatInterval time.Duration
	// InstanceID, if set, makes the processor a static member of both
	// groups (KIP-345, group.instance.id): restarted with the same id
	// within the session timeout, it gets its partitions back without a
	// rebalance. Two running processors must never share one.
	InstanceID string
}

// Defaults of Membership.
const (
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = 250 * time.Millisecond
)

// Session is the session timeout in force.
func (m Membership) Session() time.Duration {
	if m.SessionTimeout > 0 {
		return m.SessionTimeout
	}
	return DefaultSessionTimeout
}

// Heartbeat is the heartbeat interval in force.
func (m Membership) Heartbeat() time.Duration {
	if m.HeartbeatInterval > 0 {
		return m.HeartbeatInterval
	}
	return DefaultHeartbeatInterval
}

// Check reports what Apache Kafka or the clients would refuse.
func (m Membership) Check() error {
	var errs []error
	if m.SessionTimeout < 0 || m.SessionTimeout%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("session timeout %v: want a positive whole number of milliseconds", m.SessionTimeout))
	}
	if m.HeartbeatInterval < 0 || m.HeartbeatInterval%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("heartbeat interval %v: want a positive whole number of milliseconds", m.HeartbeatInterval))
	}
	if h, s := m.Heartbeat(), m.Session(); h >= s {
		errs = append(errs, fmt.Errorf("heartbeat interval %v: want less than the session timeout %v", h, s))
	}
	if id := m.InstanceID; id != "" {
		if len(id) > 249 || id == "." || id == ".." || strings.IndexFunc(id, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
		}) >= 0 {
			errs = append(errs, fmt.Errorf("instance id %q: want at most 249 of a-z A-Z 0-9 . _ - (and not . or ..)", id))
		}
	}
	return errors.Join(errs...)
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

// LogSarama sends the log of every sarama client in the process (sarama's
// Logger is global: group joins, rebalances, fetches) to l at debug level,
// if l logs at debug level; that is where the table stage's rebalances
// show their steps.
func LogSarama(l *slog.Logger) {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		sarama.Logger = gokaLogger{l, "sarama"}
	}
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
	// The table stage's group (Membership). Its rebalances are eager: every
	// member stops every partition until the new assignment, and the
	// others join at most a heartbeat late, so heartbeats are frequent.
	// A SIGTERM during JoinGroup waits for the rebalance timeout.
	cfg.Consumer.Group.Session.Timeout = c.Membership.Session()
	cfg.Consumer.Group.Heartbeat.Interval = c.Membership.Heartbeat()
	cfg.Consumer.Group.Rebalance.Timeout = c.Membership.Session()
	// A fetch that finds nothing new waits this long at the broker (sarama's
	// default: 500 ms), and a consumer closing or dropping a partition
	// waits for it: at every rebalance of the table stage, once in the
	// member that leaves and once in each that stays (seen in the debug
	// log as "closed dead subscription" 0.5 s after the session ended).
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	// A JoinGroup or SyncGroup answered "rebalance in progress" (another
	// member joined meanwhile) is retried after this, 2 s by default.
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	// Static membership needs JoinGroup v5, protocol 2.3: the version above.
	cfg.Consumer.Group.InstanceId = c.Membership.InstanceID
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
		goka.WithLogger(gokaLogger{l: c.logger()}),
	}
}

// ViewOptions configures a goka view of the group table for this cluster.
func (c Config) ViewOptions() []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewConsumerSaramaBuilder(c.consumerBuilder()),
		goka.WithViewTopicManagerBuilder(c.topicManager()),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewLogger(gokaLogger{l: c.logger()}),
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
type gokaLogger struct {
	l    *slog.Logger
	from string // "": goka
}

func (g gokaLogger) Print(v ...any) {
	g.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), "from", cmp.Or(g.from, "goka"))
}
func (g gokaLogger) Println(v ...any)               { g.Print(v...) }
func (g gokaLogger) Printf(format string, v ...any) { g.Print(fmt.Sprintf(format, v...)) }
