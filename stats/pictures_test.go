package stats

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

type picturesResult struct {
	Pictures   map[string]PictureResult `json:"pictures"`
	Tracked    int                      `json:"tracked_pictures"`
	Untracked  int64                    `json:"untracked_registrations"`
	MaxTracked int                      `json:"max_tracked_pictures"`
}

// naiveTallies counts registrations and weight per id without any bound.
func naiveTallies(recs []Record) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, r := range recs {
		if r.Valid() {
			t := out[r.Registration.PictureID]
			out[r.Registration.PictureID] = [2]int64{t[0] + 1, t[1] + r.Registration.Weight}
		}
	}
	return out
}

func TestPicturesExactForTheFeedsPictures(t *testing.T) {
	recs := randomStream(rand.New(rand.NewPCG(1, 1)), 5000) // 150 ids
	res := resultAs[picturesResult](t, aggregate(t, "pictures", recs))
	want := naiveTallies(recs)
	if res.Tracked != len(want) || len(res.Pictures) != len(want) || res.Untracked != 0 {
		t.Fatalf("tracked %d (%d listed), untracked registrations %d; want all %d tracked", res.Tracked, len(res.Pictures), res.Untracked, len(want))
	}
	for id, w := range want {
		if got := res.Pictures[id]; got.Registrations != w[0] || got.Average != float64(w[1])/float64(w[0]) {
			t.Errorf("%s: %+v, want %d registrations averaging %v g", id, got, w[0], float64(w[1])/float64(w[0]))
		}
	}
}

// TestPicturesBoundTheirMemory checks the bottom-k rule: with more ids than
// the bound, exactly the MaxTrackedPictures ids of smallest hash are
// tracked, each with its exact tally, and the rest is counted as untracked.
func TestPicturesBoundTheirMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	var recs []Record
	for i := range 3 * MaxTrackedPictures {
		id := fmt.Sprintf("id-%d", i)
		for range 1 + rng.IntN(3) {
			recs = append(recs, valid(id, 1+rng.Int64N(5000)))
		}
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	res := resultAs[picturesResult](t, aggregate(t, "pictures", recs))

	want := naiveTallies(recs)
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if idHash(a) < idHash(b) {
			return -1
		}
		return 1
	})
	if res.Tracked != MaxTrackedPictures || len(res.Pictures) != MaxTrackedPictures {
		t.Fatalf("tracked %d pictures, want the bound %d", res.Tracked, MaxTrackedPictures)
	}
	var tracked int64
	for _, id := range ids[:MaxTrackedPictures] {
		got, ok := res.Pictures[id]
		if !ok || got.Registrations != want[id][0] || got.Average != float64(want[id][1])/float64(want[id][0]) {
			t.Fatalf("%s (among the smallest hashes): %+v, tracked %v; want %d registrations", id, got, ok, want[id][0])
		}
		tracked += got.Registrations
	}
	if res.Untracked != int64(len(recs))-tracked {
		t.Fatalf("untracked registrations %d, want %d", res.Untracked, int64(len(recs))-tracked)
	}
}
