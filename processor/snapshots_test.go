package processor

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/stats"
)

// The snapshot producer must send each statistic's snapshots to the
// partition goka's own producer would: the table stage's partition of the
// group table is the snapshots' partition.
func TestSnapshotsGoWhereGokaSendsThem(t *testing.T) {
	keys := stats.Names(stats.All())
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("key-%d", i))
	}
	for _, n := range []int32{1, 2, 3, 4, 7, 12, 64} {
		sp := sarama.NewCustomHashPartitioner(goka.DefaultHasher())("snapshots")
		for _, key := range keys {
			want, err := sp.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
			if err != nil {
				t.Fatal(err)
			}
			if got := gokaPartition(&kgo.Record{Key: []byte(key)}, int(n)); int32(got) != want {
				t.Errorf("%q of %d partitions: partition %d, goka's producer sends it to %d", key, n, got, want)
			}
		}
	}
}
