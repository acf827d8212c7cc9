package processor

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
)

// BenchmarkInputStage is the processor's work per record once a fetch has
// arrived: decode, batch and every statistic's Add, without windows and
// with the default ones — what issue 18 asks to bring down. Fetches of
// 1,000 records of 100 pictures, 1% invalid (forwarded to a sink that
// acknowledges at once), event times a millisecond apart; the batch never
// closes (no producer here), so no snapshot is encoded. It reports ns and allocations per record:
//
//	go test -run XXX -bench InputStage -benchmem ./processor
func BenchmarkInputStage(b *testing.B) {
	for _, spec := range []string{"none", stats.DefaultWindowsSpec} {
		b.Run("windows="+spec, func(b *testing.B) {
			ws, err := stats.ParseWindows(spec)
			if err != nil {
				b.Fatal(err)
			}
			p, err := New(cluster.DefaultNames(""), stats.All(), slog.New(slog.DiscardHandler),
				WithMetrics(NewMetrics(prometheus.NewRegistry())), WithBatchSize(1<<40),
				WithWindows(stats.WindowedKinds(stats.All(), ws), DefaultWindowInterval))
			if err != nil {
				b.Fatal(err)
			}
			p.batcher = newBatcher(p.kinds, p.fast, p.batch, outputs{
				fail:    func(err error) { b.Error(err) },
				forward: func(_ string, _ []byte, done func(error)) { done(nil) }, // as an acknowledged send
			}, p.metrics, slog.New(slog.DiscardHandler))
			p.batcher.assign(map[int32]int64{0: -1})
			const fetch = 1000
			recs := make([]*kgo.Record, fetch)
			start := time.Now()
			for i := range recs {
				value := codec.Encode(codec.Registration{PictureID: fmt.Sprintf("%012d", i%100), Weight: int64(20 + i*7919%4980)})
				if i%100 == 99 {
					value = []byte(`{"picture_id":"x","weight":-1}`)
				}
				recs[i] = &kgo.Record{Value: value}
			}
			var offset int64
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for range b.N {
				for _, r := range recs {
					r.Offset, r.Timestamp = offset, start.Add(time.Duration(offset)*time.Millisecond)
					offset++
				}
				p.handle(0, offset, recs)
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fetch), "ns/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N*fetch), "allocs/record")
			b.ReportMetric(0, "ns/op")
		})
	}
}
