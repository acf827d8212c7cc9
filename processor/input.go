package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
)

// runInput is the input stage: a franz-go consumer group (Names.InputGroup)
// that reads the picture topic, decodes each record and hands it to the
// batcher, decoding the partitions of each fetch in parallel. It commits
// only the batch boundaries the batcher reports, never on its own. The same
// client forwards rejected records: a goka producer's per-message hand-offs
// made forwarding 1% of the records halve the drain rate on Apache Kafka.
//
// It also runs the batcher's snapshot flusher. When ctx is cancelled it
// stops reading and flushing, waits until the producer has every
// acknowledgement, commits the last boundaries and leaves the group.
func (p *Processor) runInput(ctx context.Context, c cluster.Config, producer goka.Producer, fail func(error)) error {
	topic := string(c.Names.Pictures)
	// Commits and forwarded records begin only after the first fetch, when
	// cl is set; the batcher must exist before, for the client's callbacks.
	var cl *kgo.Client
	commits := newCommitter(p.logger, func(offsets map[int32]int64) {
		start := time.Now()
		err := commitOffsets(cl, topic, offsets, p.logger)
		p.metrics.committedOffsets(offsets, time.Since(start), err)
	})
	p.batcher = newBatcher(p.kinds, p.fast, p.batch, outputs{
		snapshots: string(c.Names.Snapshots()),
		producer:  producer,
		forward: func(key string, value []byte, done func(error)) {
			cl.Produce(context.Background(), &kgo.Record{Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) { done(err) })
		},
		commit: commits.request,
		fail:   fail,
	}, p.metrics, p.logger)
	opts := append(p.metrics.kgoHooks("kafka_input"),
		kgo.ConsumerGroup(c.Names.InputGroup()),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.DefaultProduceTopic(string(c.Names.Rejected)),
		// A repeated rejected record is harmless (its key names its source
		// offset), and kfake forgets idempotent producers when it restarts.
		kgo.DisableIdempotentWrite(),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(time.Minute), // then fail, as the snapshot producer does
		kgo.BlockRebalanceOnPoll(),             // assignments change only between polls
		// Cooperative (franz-go's default, named here because the batcher
		// relies on it only through the callbacks below): a rebalance
		// revokes only the partitions that move, and the others go on
		// being read. README, "What is guaranteed", says why that is exact.
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(c.Membership.Session()),
		kgo.HeartbeatInterval(c.Membership.Heartbeat()), // the others join a rebalance at most this late
		kgo.RebalanceTimeout(c.Membership.Session()),    // a rebalance waits this long for members that died
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
			committed := committedOffsets(ctx, cl, c.Names.InputGroup(), topic, assigned[topic])
			p.metrics.assigned(committed, partitionBounds(ctx, cl, topic, assigned[topic]))
			p.batcher.assign(committed)
			p.health.assigned.Store(true) // called on every join, also with nothing assigned
			p.logger.Info("input partitions assigned", "partitions", fmt.Sprint(assigned[topic]))
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
			p.batcher.revoke(revoked[topic])
			p.metrics.revoked(revoked[topic])
			commits.forget(revoked[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			p.health.assigned.Store(false) // the session is lost: no longer in the group
			p.batcher.revoke(lost[topic])
			p.metrics.revoked(lost[topic])
			commits.forget(lost[topic])
		}),
	)
	if id := c.Membership.InstanceID; id != "" {
		opts = append(opts, kgo.InstanceID(id))
	}
	cl, err := c.Client(opts...)
	if err != nil {
		producer.Close()
		return err
	}
	defer cl.Close()
	defer p.health.assigned.Store(false)
	go commits.run()
	stopFlush, flushed := make(chan struct{}), make(chan struct{})
	go func() { defer close(flushed); p.batcher.run(p.interval, p.windowed, stopFlush, &p.health.flushBeat) }()
	defer func() {
		close(stopFlush)
		<-flushed
		if err := producer.Close(); err != nil { // waits for every acknowledgement
			p.logger.Warn("closing the snapshot producer", "err", err)
		}
		if err := cl.Flush(context.Background()); err != nil { // the same for rejected records
			p.logger.Warn("forwarding rejected records", "err", err)
		}
		// The last boundaries. An acknowledgement can still come after
		// this (goka's producer Close gives up waiting after 60 s): the
		// committer drops its commit, which is safe (see committer).
		commits.stop()
	}()

	fetchErrs := &fetchErrors{topic: topic, group: c.Names.InputGroup(), missingWait: p.missingTopicWait, logger: p.logger}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance() // or leaving the group would wait for it forever
			return nil
		}
		polled := time.Now()
		var failed error
		errored := false
		fetches.EachError(func(t string, part int32, err error) {
			errored = true
			if err := fetchErrs.observe(t, part, err, polled); err != nil && failed == nil {
				failed = err
			}
		})
		if failed != nil {
			cl.AllowRebalance()
			return failed
		}
		if fetches.NumRecords() > 0 {
			fetchErrs.progressed()
		}
		p.health.handling.Store(polled.UnixNano())
		var wg sync.WaitGroup
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.handle(fp.Partition, fp.HighWatermark, fp.Records)
			}()
		})
		wg.Wait()
		p.health.handling.Store(0)
		if p.hook != nil && fetches.NumRecords() > 0 {
			p.hook(fetches.NumRecords(), polled)
		}
		cl.AllowRebalance()
		if errored && fetches.NumRecords() == 0 {
			// franz-go hands some errors back at once on every fetch (a
			// deleted topic's UNKNOWN_TOPIC_ID, thousands a second): pace
			// the polls while that lasts rather than spin.
			select {
			case <-ctx.Done():
			case <-time.After(fetchErrorPause):
			}
		}
	}
}

// handle decodes records of one partition, in offset order, and adds them
// to their batches. It counts them once for the fetch, not per record.
func (p *Processor) handle(part int32, hwm int64, recs []*kgo.Record) {
	var rejected [len(reasonIndex)]int
	defer func() {
		if p.batcher.owned(part) == nil {
			return // dropped (addAll): its owner counts it
		}
		next := int64(-1)
		if len(recs) > 0 {
			next = recs[len(recs)-1].Offset + 1
		}
		p.metrics.part(part).fetched(p.metrics, len(recs), &rejected, next, hwm)
	}()
	dec := p.decoders.of(part)
	p.batcher.addAll(part, hwm, func(add adder) {
		rec := new(stats.Record)
		for _, r := range recs {
			*rec = stats.Record{Time: r.Timestamp}
			reg, err := dec.Decode(r.Value)
			if err == nil {
				rec.Registration = reg
				add(r.Offset, rec, "", nil)
				continue
			}
			rec.Rejected, _ = codec.ReasonOf(err)
			rejected[reasonSlot(rec.Rejected)]++
			rej := Rejection{Reason: rec.Rejected, Error: err.Error(), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key)}
			if utf8.Valid(r.Value) {
				rej.Value = string(r.Value)
			} else {
				rej.ValueB64 = r.Value
			}
			value, _ := json.Marshal(rej) // strings, ints and bytes always encode
			add(r.Offset, rec, RejectionKey(r.Topic, r.Partition, r.Offset), value)
		}
	})
}

// decoders keeps a codec.Decoder per input partition, whose ids recur
// fetch after fetch. A partition is handled by one goroutine at a time.
type decoders struct {
	mu sync.Mutex
	m  map[int32]*codec.Decoder
}

func (d *decoders) of(part int32) *codec.Decoder {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m[part] == nil {
		if d.m == nil {
			d.m = map[int32]*codec.Decoder{}
		}
		d.m[part] = codec.NewDecoder()
	}
	return d.m[part]
}

// partitionBounds returns the start and end offsets of the assigned
// partitions, for the lag of those no fetch has returned records of (yet);
// nil if the broker does not say.
func partitionBounds(ctx context.Context, cl *kgo.Client, topic string, parts []int32) map[int32][2]int64 {
	if len(parts) == 0 {
		return nil
	}
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil
	}
	out := map[int32][2]int64{}
	for _, p := range parts {
		s, sok := starts.Lookup(topic, p)
		e, eok := ends.Lookup(topic, p)
		if sok && eok && s.Err == nil && e.Err == nil {
			out[p] = [2]int64{s.Offset, e.Offset}
		}
	}
	return out
}

// committedOffsets fetches where the group's commits left the assigned
// partitions (-1 where nothing was committed).
func committedOffsets(ctx context.Context, cl *kgo.Client, group, topic string, parts []int32) map[int32]int64 {
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		out[p] = -1
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return out // unknown: the batcher falls back to the first offset it reads
	}
	for _, p := range parts {
		if o, ok := offs.Lookup(topic, p); ok && o.Err == nil && o.At >= 0 {
			out[p] = o.At
		}
	}
	return out
}
