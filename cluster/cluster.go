// Package cluster connects picstats to Kafka: the names of its topics, the
// client configuration that works with both Apache Kafka and the embedded
// kfake broker, creation of the topics picstats owns, and the embedded broker
// itself.
package cluster

import (
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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// Names are the Kafka names picstats uses. A prefix lets several independent
// pipelines (or tests) share one cluster.
type Names struct {
	Prefix   string      // the prefix of every name below
	Group    goka.Group  // the processor's consumer group; its table is Group+"-table"
	Pictures goka.Stream // input: registrations
	Stats    goka.Stream // output: one JSON value per statistic, key = statistic name
	Rejected goka.Stream // output: rejected records with the reason
}

// DefaultNames returns the names of the original assignment and the design,
// each prefixed with prefix.
func DefaultNames(prefix string) Names {
	return Names{
		Prefix:   prefix,
		Group:    goka.Group(prefix + "picstats"),
		Pictures: goka.Stream(prefix + "picture"),
		Stats:    goka.Stream(prefix + "stats"),
		Rejected: goka.Stream(prefix + "picture.rejected"),
	}
}

// Table is the group table the processor writes and views read.
func (n Names) Table() goka.Table { return goka.GroupTable(n.Group) }

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
		return goka.NewTopicManager(brokers, c.Sarama(), tm)
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

// Snapshots is the topic that carries batch snapshots from the input stage
// to the table, keyed by statistic name.
func (n Names) Snapshots() goka.Stream { return goka.Stream(string(n.Group) + "-snapshots") }

// InputGroup is the consumer group of the input stage, which reads the
// picture topic and commits its offsets.
func (n Names) InputGroup() string { return string(n.Group) + "-input" }

// WaitAndEnsureTopics is EnsureTopics, retried while the cluster does not
// answer (it may be starting or restarting), for up to wait.
func WaitAndEnsureTopics(ctx context.Context, c Config, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for backoff := 250 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := EnsureTopics(ctx, c)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(backoff).After(deadline) {
			return fmt.Errorf("no usable Kafka cluster at %v after %v: %w", c.Brokers, wait, err)
		}
		c.logger().Warn("cannot set up the topics yet; retrying", "brokers", c.Brokers, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// MaxStateBytes is the largest snapshot, table value or result picstats
// writes (topic max.message.bytes and the producer's limit). Kafka's 1 MB
// default is too small for the worst case: a table value holds two
// aggregates per input partition, and the per-picture ones reach about
// 140 kB each with 1000 ids of 128 bytes.
const MaxStateBytes = 16 << 20

// TableSegmentBytes is the segment size, per partition, of the group
// table's changelog. Kafka compacts only closed segments, and a processor
// or API replica replays the whole changelog when it starts. Live, the
// table takes every open snapshot: about 240 KB/s with a 200 records/s
// feed and every statistic (bench/peers --phases live), so Kafka's 1 GiB
// default segment took over an hour to close and as long to replay. At
// MaxStateBytes (every value still fits a segment) a partition replays at
// most its open segment, one closed segment the cleaner has not reached
// yet, and one value per statistic, however long picstats has run.
const TableSegmentBytes = MaxStateBytes

// EnsureTopics creates every topic of the pipeline that does not exist yet:
// picture, stats (compacted: the latest value per statistic), and
// picture.rejected, then the snapshots topic and goka's table topic with as
// many partitions as picture has (goka requires the two co-partitioned).
// goka would create the table itself, but fails when several processors
// race to do so; creating it here, where "already exists" is success, makes
// starting any number of processors and datafeeds at once safe.
func EnsureTopics(ctx context.Context, c Config) error {
	// kadm answers ListTopics from the client's metadata cache while it is
	// younger than MetadataMinAge (5 s by default): waitVisible would not see
	// the topics just created for that long.
	cl, err := c.Client(kgo.MetadataMinAge(50 * time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	create := func(ctx context.Context, name string, partitions int32, configs map[string]*string) error {
		resp, err := adm.CreateTopic(ctx, partitions, int16(c.Replication), configs, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s on %v: %w", name, c.Brokers, err)
		}
		return nil
	}
	// The snapshots and table topics take picture's partition count (goka
	// requires them co-partitioned); a new picture topic gets c.Partitions.
	partitions := int32(c.Partitions)
	details, err := adm.ListTopics(ctx, string(c.Names.Pictures))
	if err != nil {
		return fmt.Errorf("describe topic %s on %v: %w", c.Names.Pictures, c.Brokers, err)
	}
	if d := details[string(c.Names.Pictures)]; d.Err == nil && len(d.Partitions) > 0 {
		partitions = int32(len(d.Partitions))
	}
	// All at once: one round trip instead of five.
	compact, maxBytes := "compact", fmt.Sprint(MaxStateBytes)
	snapshotRetention := "86400000" // snapshots matter only until the table has them; a day is ample
	tableSegment := fmt.Sprint(TableSegmentBytes)
	specs := []struct {
		name    string
		configs map[string]*string
	}{
		{string(c.Names.Pictures), nil},
		{string(c.Names.Stats), map[string]*string{"cleanup.policy": &compact, "max.message.bytes": &maxBytes}},
		{string(c.Names.Rejected), nil},
		{string(c.Names.Snapshots()), map[string]*string{"retention.ms": &snapshotRetention, "max.message.bytes": &maxBytes}},
		{string(c.Names.Table()), map[string]*string{"cleanup.policy": &compact, "max.message.bytes": &maxBytes, "segment.bytes": &tableSegment}},
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range specs {
		g.Go(func() error { return create(gctx, t.name, partitions, t.configs) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	details, err = waitVisible(ctx, adm, c.Names.all())
	if err != nil {
		return err
	}
	return coPartitioned(details, c.Names)
}

// coPartitioned checks that the snapshots and table topics have as many
// partitions as picture: another process may have created picture with
// other --partitions between our look and our creation.
func coPartitioned(details kadm.TopicDetails, n Names) error {
	topics := []string{string(n.Pictures), string(n.Snapshots()), string(n.Table())}
	want := len(details[topics[0]].Partitions)
	for _, t := range topics[1:] {
		if got := len(details[t].Partitions); got != want {
			return fmt.Errorf("topic %s has %d partitions but %s has %d: they must be equal (goka joins them by partition); delete %s and %s, or recreate %s with %d partitions",
				t, got, topics[0], want, topics[1], topics[2], topics[0], got)
		}
	}
	return nil
}

func (n Names) all() []string {
	return []string{string(n.Pictures), string(n.Stats), string(n.Rejected), string(n.Snapshots()), string(n.Table())}
}

// waitVisible waits until the broker's metadata shows every topic with a
// leader for each partition. Kafka acknowledges a creation before its
// metadata has spread; goka, started right after, would find no table topic,
// try to create it and fail with "already exists". It returns what it saw.
func waitVisible(ctx context.Context, adm *kadm.Client, topics []string) (kadm.TopicDetails, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		details, err := adm.ListTopics(ctx, topics...)
		if err == nil && visible(details, topics) {
			return details, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("topics %v not visible in the cluster's metadata after 30 s (last error: %v)", topics, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func visible(details kadm.TopicDetails, topics []string) bool {
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return false
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

// gokaLogger sends goka's chatter to slog at debug level; goka reports the
// errors that matter through the return values of Run.
type gokaLogger struct{ l *slog.Logger }

func (g gokaLogger) Print(v ...any)                 { g.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), "from", "goka") }
func (g gokaLogger) Println(v ...any)               { g.Print(v...) }
func (g gokaLogger) Printf(format string, v ...any) { g.Print(fmt.Sprintf(format, v...)) }
