package stats

import (
	"fmt"
	"math"
	"testing"
)

type distinctResult struct {
	Distinct      uint64  `json:"distinct_pictures"`
	Exact         bool    `json:"exact"`
	StandardError float64 `json:"relative_standard_error"`
}

func distinctStream(n int) []Record {
	recs := make([]Record, 0, 2*n)
	for i := range n {
		id := fmt.Sprintf("picture-%d", i)
		recs = append(recs, valid(id, 100), valid(id, 200)) // every id twice
	}
	return recs
}

func TestDistinctPictures(t *testing.T) {
	for _, n := range []int{0, 1, 100, ExactDistinctLimit} {
		res := resultAs[distinctResult](t, aggregate(t, "distinct_pictures", distinctStream(n)))
		if !res.Exact || res.Distinct != uint64(n) || res.StandardError != 0 {
			t.Errorf("%d pictures: %+v, want exactly %d", n, res, n)
		}
	}
	// Beyond the limit: an estimate, within 4 standard errors (the hash
	// is fixed, so this is deterministic, not a flaky bound).
	for _, n := range []int{ExactDistinctLimit + 1, 50_000, 300_000} {
		res := resultAs[distinctResult](t, aggregate(t, "distinct_pictures", distinctStream(n)))
		if res.Exact || res.StandardError != hllStandardError {
			t.Errorf("%d pictures: %+v, want an estimate", n, res)
		}
		if rel := math.Abs(float64(res.Distinct)-float64(n)) / float64(n); rel > 4*hllStandardError {
			t.Errorf("%d pictures estimated as %d: %.2f%% off", n, res.Distinct, 100*rel)
		}
	}
}
