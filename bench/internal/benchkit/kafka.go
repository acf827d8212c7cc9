package benchkit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/codec"
)

// Bare is what the bare consumer saw: the records it read and the four
// statistics every drain contender computes over the valid ones.
type Bare struct {
	Records, Valid, Sum, Min, Max, Bytes int64
	First, Last                          time.Time // the first fetch returned; the last record was decoded
}

// Rate is records/s from the first fetch to the last record.
func (b Bare) Rate() float64 { return float64(b.Records) / b.Last.Sub(b.First).Seconds() }

func (b *Bare) add(o Bare) {
	b.Records, b.Valid, b.Sum, b.Bytes = b.Records+o.Records, b.Valid+o.Valid, b.Sum+o.Sum, b.Bytes+o.Bytes
	b.Min, b.Max = min(b.Min, o.Min), max(b.Max, o.Max)
}

// ReadAll is the bare consumer: a franz-go client without a group that
// reads topic from the start to the end offsets it lists first, decodes
// every record with picstats' codec (the partitions of a fetch in
// parallel) and sums the four statistics. Nothing that looks at every
// record can be faster on a broker: it is the limit drains are measured
// against.
func ReadAll(ctx context.Context, brokers []string, topic string) (Bare, error) {
	b := Bare{Min: math.MaxInt64, Max: math.MinInt64}
	ends, err := EndOffsets(ctx, brokers, topic)
	if err != nil {
		return b, err
	}
	offs, left := map[int32]kgo.Offset{}, map[int32]int64{}
	for p, end := range ends {
		if end > 0 {
			offs[p], left[p] = kgo.NewOffset().AtStart(), end
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		return b, err
	}
	defer cl.Close()
	var mu sync.Mutex
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			return b, fmt.Errorf("reading %s: %w", topic, err)
		}
		if b.First.IsZero() {
			b.First = time.Now()
		}
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			wg.Go(func() {
				part := Bare{Records: int64(len(p.Records)), Min: math.MaxInt64, Max: math.MinInt64}
				for _, r := range p.Records {
					part.Bytes += int64(len(r.Value))
					if reg, err := codec.Decode(r.Value); err == nil {
						part.Valid++
						part.Sum += reg.Weight
						part.Min, part.Max = min(part.Min, reg.Weight), max(part.Max, reg.Weight)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				b.add(part)
				if p.Records[len(p.Records)-1].Offset+1 >= left[p.Partition] {
					delete(left, p.Partition)
				}
			})
		})
		wg.Wait()
	}
	b.Last = time.Now()
	return b, nil
}

// EndOffsets lists the end offset of every partition of topic.
func EndOffsets(ctx context.Context, brokers []string, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = offs.Error()
	}
	ends := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, err
}

// Produce produces rec(0) … rec(n-1) with a client of opts and returns the
// first error.
func Produce(ctx context.Context, opts []kgo.Opt, n int, rec func(i int) *kgo.Record) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	for i := range n {
		cl.Produce(ctx, rec(i), func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if p := failed.Load(); p != nil {
		return fmt.Errorf("produce: %w", *p)
	}
	return nil
}
