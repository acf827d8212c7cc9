package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"
)

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
	// With three replicas or more, a write that every in-sync replica
	// acknowledged (picstats' producers all wait for them) is on at least
	// two brokers: it survives the loss of any one.
	minISR := "2"
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range specs {
		if c.Replication >= 3 {
			if t.configs == nil {
				t.configs = map[string]*string{}
			}
			t.configs["min.insync.replicas"] = &minISR
		}
		g.Go(func() error { return create(gctx, t.name, partitions, t.configs) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	details, err = waitVisible(ctx, cl, c.Names.all())
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

// waitVisible waits until the metadata of every broker shows every topic
// with a leader for each partition. Kafka acknowledges a creation before
// its metadata has spread: goka, started right after, would find no table
// topic, try to create it and fail with "already exists"; on a cluster of
// several brokers, one that had not heard of the snapshots topic yet made a
// processor fail at start with "requested topic was not found". It returns
// what it saw.
func waitVisible(ctx context.Context, cl *kgo.Client, topics []string) (kadm.TopicDetails, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	for {
		details, err := adm.ListTopics(ctx, topics...)
		if err == nil && visible(details, topics) {
			if err = visibleOnEveryBroker(ctx, cl, topics); err == nil {
				return details, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("topics %v not visible in the cluster's metadata after 30 s (last error: %v)", topics, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// visibleOnEveryBroker asks each broker of the cluster for the topics'
// metadata, and says which does not show them all with leaders.
func visibleOnEveryBroker(ctx context.Context, cl *kgo.Client, topics []string) error {
	brokers, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return err
	}
	for _, b := range brokers.Brokers {
		req := kmsg.NewPtrMetadataRequest()
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl.Broker(int(b.NodeID)))
		if err != nil {
			return fmt.Errorf("broker %d: %w", b.NodeID, err)
		}
		for _, t := range resp.Topics {
			if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
				return fmt.Errorf("broker %d: topic %s: %w", b.NodeID, *t.Topic, err)
			}
			for _, p := range t.Partitions {
				if p.Leader < 0 || p.ErrorCode != 0 {
					return fmt.Errorf("broker %d: topic %s partition %d has no leader yet", b.NodeID, *t.Topic, p.Partition)
				}
			}
		}
		if len(resp.Topics) != len(topics) {
			return fmt.Errorf("broker %d knows %d of the topics %v", b.NodeID, len(resp.Topics), topics)
		}
	}
	return nil
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
