package stats

import (
	"cmp"
	"maps"
	"math/bits"
	"slices"
)

// TopN is how many pictures each ranking of top_pictures lists.
const TopN = 10

func init() {
	Register(Kind{
		Name:        "top_pictures",
		Description: "The 10 pictures with the most registrations and the 10 with the highest average weight (grams).",
		Version:     1,
		New:         func() Stat { return &TopPictures{*newPictures()} },
		Windows:     NoWindows, // per-picture state: too large to keep per window
	})
}

// TopPictures ranks the pictures that Pictures tracks. The rankings are
// exact while every picture is tracked (at most MaxTrackedPictures distinct
// ids, reported as "exact"); beyond, they rank the tracked sample.
type TopPictures struct{ Pictures }

var _ Stat = (*TopPictures)(nil)

func (t *TopPictures) Merge(other Stat) { t.Pictures.Merge(&other.(*TopPictures).Pictures) }

// RankedPicture is one entry of a ranking.
type RankedPicture struct {
	PictureID     string  `json:"picture_id"`
	Registrations int64   `json:"registrations"`
	Average       float64 `json:"average_weight_grams"`
}

func (t *TopPictures) Result() any {
	ids := slices.Sorted(maps.Keys(t.byID))
	top := func(cmpTally func(a, b *pictureTally) int) []RankedPicture {
		ranked := slices.Clone(ids)
		slices.SortStableFunc(ranked, func(a, b string) int { return cmpTally(t.byID[b], t.byID[a]) }) // descending; ties by id
		out := make([]RankedPicture, 0, TopN)
		for _, id := range ranked[:min(TopN, len(ranked))] {
			p := t.byID[id]
			out = append(out, RankedPicture{id, p.N, float64(p.Sum) / float64(p.N)})
		}
		return out
	}
	var tracked int64
	for _, p := range t.byID {
		tracked += p.N
	}
	return struct {
		ByRegistrations []RankedPicture `json:"by_registrations"`
		ByAverage       []RankedPicture `json:"by_average_weight"`
		Exact           bool            `json:"exact"`
	}{
		ByRegistrations: top(func(a, b *pictureTally) int { return cmp.Compare(a.N, b.N) }),
		ByAverage:       top(compareAverages),
		Exact:           tracked == t.N,
	}
}

// compareAverages compares a.Sum/a.N with b.Sum/b.N exactly, as
// a.Sum·b.N against b.Sum·a.N in 128 bits.
func compareAverages(a, b *pictureTally) int {
	ah, al := bits.Mul64(uint64(a.Sum), uint64(b.N))
	bh, bl := bits.Mul64(uint64(b.Sum), uint64(a.N))
	if c := cmp.Compare(ah, bh); c != 0 {
		return c
	}
	return cmp.Compare(al, bl)
}
