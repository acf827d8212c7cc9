package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/codec"
)

// The bare contender: a franz-go consumer (no group) that reads every record
// and decodes it with picstats' codec, the partitions of each fetch in
// parallel, and sums the four statistics. Nothing that looks at every
// record can be faster on this broker; it is the limit the others are
// measured against.

type bareReport struct {
	Records, Valid, Sum, Min, Max, Bytes int64
	FirstRecordSeconds                   float64
}

func (e *env) runBare(ctx context.Context, b *backlog) result {
	report := filepath.Join(e.tmp, "bare-report.json")
	r := result{ready: math.NaN()}
	c, err := startChild(ctx, e.log("bare"), nil, e.self, "--mode", "bare", "--brokers", e.broker, "--topic", b.topic, "--report", report)
	if err != nil {
		r.note = err.Error()
		return r
	}
	select {
	case <-c.done:
	case <-time.After(timeout):
		r.note = "timeout"
	}
	r.seconds = time.Since(c.start).Seconds()
	r.cpu, r.rssMB = c.stop()
	if c.err != nil {
		r.note = c.exitNote("bare")
		c.printTail("bare", 20)
		return r
	}
	var rep bareReport
	raw, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(raw, &rep)
	}
	if err != nil {
		r.note = fmt.Sprintf("report: %v", err)
		return r
	}
	r.ready = rep.FirstRecordSeconds
	if rep.Valid != b.exp.count || rep.Sum != b.exp.total || rep.Min != b.exp.min || rep.Max != b.exp.max {
		r.note = fmt.Sprintf("got count %d sum %d min %d max %d", rep.Valid, rep.Sum, rep.Min, rep.Max)
		return r
	}
	if rep.Records > 0 {
		b.valueBytes = float64(rep.Bytes) / float64(rep.Records)
	}
	r.ok = true
	return r
}

// bareChild reads every record of the topic from the start to the end
// offsets it lists first and writes a JSON report to the report file.
func bareChild(broker, topic, report string) error {
	start := time.Now()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	cl.Close()
	if err != nil {
		return err
	}
	offs := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			offs[o.Partition] = kgo.NewOffset().AtStart()
			left[o.Partition] = o.Offset
		}
	})
	cl, err = kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		return err
	}
	defer cl.Close()
	rep := bareReport{Min: math.MaxInt64, Max: math.MinInt64}
	var mu sync.Mutex
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			return err
		}
		if rep.FirstRecordSeconds == 0 {
			rep.FirstRecordSeconds = time.Since(start).Seconds()
		}
		var wg sync.WaitGroup
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				var n, valid, sum, size int64
				mn, mx := int64(math.MaxInt64), int64(math.MinInt64)
				for _, r := range p.Records {
					n++
					size += int64(len(r.Value))
					reg, err := codec.Decode(r.Value)
					if err != nil {
						continue
					}
					valid++
					sum += reg.Weight
					mn, mx = min(mn, reg.Weight), max(mx, reg.Weight)
				}
				last := p.Records[len(p.Records)-1].Offset
				mu.Lock()
				rep.Records += n
				rep.Valid += valid
				rep.Sum += sum
				rep.Bytes += size
				rep.Min, rep.Max = min(rep.Min, mn), max(rep.Max, mx)
				if last+1 >= left[p.Partition] {
					delete(left, p.Partition)
				}
				mu.Unlock()
			}()
		})
		wg.Wait()
	}
	out, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	return os.WriteFile(report, out, 0o644)
}
