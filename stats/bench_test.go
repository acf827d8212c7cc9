package stats

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/picstats/picstats/codec"
)

// BenchmarkAdd measures the cost of folding one record into each
// statistic's aggregate, and into all of them (what the engine pays per
// record), on a random stream of 150 pictures, 10% of the records rejected.
func BenchmarkAdd(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	recs := make([]Record, 1<<14)
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for i := range recs {
		recs[i].Time = start.Add(time.Duration(i) * time.Millisecond)
		if rng.IntN(100) == 0 {
			recs[i].Rejected = codec.ReasonMalformedJSON
			continue
		}
		recs[i].Registration = codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(100)), Weight: 20 + rng.Int64N(4980)}
	}
	run := func(b *testing.B, kinds []Kind) {
		aggs := make([]Stat, len(kinds))
		for i, k := range kinds {
			aggs[i] = k.New()
		}
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			r := &recs[i&(len(recs)-1)]
			for _, a := range aggs {
				a.Add(r)
			}
		}
	}
	for _, k := range All() {
		b.Run(k.Name, func(b *testing.B) { run(b, []Kind{k}) })
	}
	b.Run("all", func(b *testing.B) { run(b, All()) })
	simple, _ := Select("count,average_weight,min_weight,max_weight,rejected,stddev_weight,weight_histogram")
	b.Run("simple7", func(b *testing.B) { run(b, simple) })
}
