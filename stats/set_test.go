package stats

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestSetEqualsAddingToEach checks that a Set's aggregates equal adding
// every record to each kind on its own, for every registered statistic and
// its windowed forms (two of them of one size, and 90-second windows, so
// that a run is half a minute), over streams in time order (long runs),
// in random order (a run per record), and in order with stragglers,
// stragglers from evicted windows and a jump into the future, with the
// aggregates read at random points in between.
func TestSetEqualsAddingToEach(t *testing.T) {
	kinds := lawKinds(t)
	for _, k := range All() {
		if slices.Contains(k.WindowSizes(), Minute) {
			wk, err := k.Windowed(Window{Size: 90 * time.Second, Retention: 30 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			kinds = append(kinds, wk)
		}
	}
	streams := map[string]func(*rand.Rand) []Record{
		"random order": func(rng *rand.Rand) []Record { return randomStream(rng, 2000) },
		"time order": func(rng *rand.Rand) []Record {
			recs := randomStream(rng, 3000)
			slices.SortStableFunc(recs, func(a, b Record) int { return a.Time.Compare(b.Time) })
			return recs
		},
		"stragglers and a jump": func(rng *rand.Rand) []Record {
			recs := randomStream(rng, 3000)
			slices.SortStableFunc(recs, func(a, b Record) int { return a.Time.Compare(b.Time) })
			for i := range recs {
				switch {
				case i%50 == 7:
					recs[i].Time = recs[i].Time.Add(-time.Duration(rng.Int64N(int64(3 * time.Hour))))
				case i == 2500:
					recs[i].Time = recs[i].Time.Add(40 * 24 * time.Hour)
				}
			}
			return recs
		},
	}
	for name, stream := range streams {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(len(name))))
			recs := stream(rng)
			set := NewSet(kinds)
			each := make([]Stat, len(kinds))
			for i, k := range kinds {
				each[i] = k.New()
			}
			for n, r := range recs {
				set.Add(&r)
				for _, s := range each {
					s.Add(&r)
				}
				if rng.IntN(500) == 0 || n == len(recs)-1 {
					for i, got := range set.Stats() {
						assertSame(t, kinds[i], fmt.Sprintf("after %d records", n+1), got, each[i])
					}
				}
			}
		})
	}
}

// TestSetDoesNotKeepTheRecord checks Set.Add's contract: the caller may
// reuse the record at once.
func TestSetDoesNotKeepTheRecord(t *testing.T) {
	kinds := lawKinds(t)
	recs := randomStream(rand.New(rand.NewPCG(9, 9)), 500)
	set, reused := NewSet(kinds), new(Record)
	for _, r := range recs {
		*reused = r
		set.Add(reused)
	}
	*reused = Record{}
	for i, got := range set.Stats() {
		assertSame(t, kinds[i], "after reusing the record", got, onePass(kinds[i], recs))
	}
}
