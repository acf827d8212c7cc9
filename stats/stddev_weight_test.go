package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func stddevOf(t *testing.T, recs []Record) float64 {
	t.Helper()
	res := resultAs[struct {
		Stddev *float64 `json:"stddev_weight_grams"`
	}](t, aggregate(t, "stddev_weight", recs))
	if res.Stddev == nil {
		t.Fatal("stddev is null for a non-empty stream")
	}
	return *res.Stddev
}

func TestStddevWeight(t *testing.T) {
	weights := func(ws ...int64) []Record {
		recs := make([]Record, len(ws))
		for i, w := range ws {
			recs[i] = valid("a", w)
		}
		return recs
	}
	tests := []struct {
		name string
		recs []Record
		want float64
	}{
		{"one value", weights(42), 0},
		{"textbook", weights(2, 4, 4, 4, 5, 5, 7, 9), 2},
		// A large mean with a tiny spread: naive Σx²/n − mean² in float64
		// loses every digit here.
		{"large mean", weights(1_000_000, 999_999, 1_000_000, 999_999), 0.5},
		{"rejected records do not count", append(weights(10, 20), rejected("empty_value")), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stddevOf(t, tt.recs); got != tt.want {
				t.Fatalf("stddev %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStddevWeightAgreesWithTwoPass compares with the textbook two-pass
// formula on random streams.
func TestStddevWeightAgreesWithTwoPass(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 20 {
		recs := randomStream(rng, 1+rng.IntN(2000))
		var n, sum float64
		for _, r := range recs {
			if r.Valid() {
				n++
				sum += float64(r.Registration.Weight)
			}
		}
		if n == 0 {
			continue
		}
		mean, ss := sum/n, 0.0
		for _, r := range recs {
			if r.Valid() {
				d := float64(r.Registration.Weight) - mean
				ss += d * d
			}
		}
		want := math.Sqrt(ss / n)
		if got := stddevOf(t, recs); math.Abs(got-want) > 1e-9*want {
			t.Fatalf("stddev %v, two-pass %v", got, want)
		}
	}
}
