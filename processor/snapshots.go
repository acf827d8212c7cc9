package processor

import (
	"context"
	"fmt"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
)

// snapshotProducer sends the input stage's snapshots with franz-go, behind
// goka's Producer interface. goka's producer is sarama's, which fails a
// message at once when it cannot refresh the leader's metadata ("client has
// run out of available brokers"), whatever its retry settings: every broker
// restart failed a snapshot and so stopped the processor (the soak test saw
// it at each restart). franz-go retries until the delivery timeout.
//
// Snapshots of a partition must reach the table in the order they were
// sent: one produce request in flight per broker keeps them so across
// retries. A retry may repeat a snapshot, which the table ignores. Keys go
// to the partitions goka's hasher picks, as goka's producer would send
// them: the table stage relies on that co-partitioning.
type snapshotProducer struct{ cl *kgo.Client }

var _ goka.Producer = (*snapshotProducer)(nil)

// snapshotDeliveryTimeout is how long a snapshot may wait for the cluster
// (a broker restart, a leader election) before the processor gives up.
const snapshotDeliveryTimeout = time.Minute

func newSnapshotProducer(c cluster.Config, extra ...kgo.Opt) (*snapshotProducer, error) {
	cl, err := c.Client(append(extra,
		kgo.ClientID(cluster.ClientID+"-snapshots"),
		kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int { return gokaPartition })),
		kgo.MaxProduceRequestsInflightPerBroker(1),
		// Idempotence would keep order with more in flight, but kfake
		// forgets idempotent producers when it restarts; a repeated
		// snapshot is harmless.
		kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// No linger: the batcher sends a partition's next open snapshot
		// only once the previous one is acknowledged, so snapshots batch
		// while a request is in flight, and a 5 ms linger was a third of
		// the latency at 1,000 records/s.
		kgo.ProducerLinger(0),
		kgo.ProducerBatchMaxBytes(cluster.MaxStateBytes),
		kgo.RecordDeliveryTimeout(snapshotDeliveryTimeout),
	)...)
	if err != nil {
		return nil, fmt.Errorf("snapshot producer: %w", err)
	}
	return &snapshotProducer{cl}, nil
}

// gokaPartition is the partition goka's producer (sarama's hash
// partitioner over goka.DefaultHasher) sends key to.
func gokaPartition(r *kgo.Record, partitions int) int {
	h := goka.DefaultHasher()()
	_, _ = h.Write(r.Key)
	p := int32(h.Sum32()) % int32(partitions)
	if p < 0 {
		p = -p
	}
	return int(p)
}

func (p *snapshotProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

func (p *snapshotProducer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	p.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) { finish(nil, err) })
	return promise
}

// Close waits for every snapshot's acknowledgement (at most the delivery
// timeout) and closes the client.
func (p *snapshotProducer) Close() error {
	err := p.cl.Flush(context.Background())
	p.cl.Close()
	return err
}
