package stats

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWeightPercentilesWithinTheirBound compares with exact percentiles
// (the value at rank ⌊q·(n−1)⌋, DDSketch's definition) for uniform and
// skewed weights.
func TestWeightPercentilesWithinTheirBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	draws := map[string]func() int64{
		"uniform 20-5000 g": func() int64 { return 20 + rng.Int64N(4980) },
		"log-uniform 1 g-1000 kg": func() int64 {
			return max(1, int64(math.Exp(rng.Float64()*math.Log(1e6))))
		},
		"one weight": func() int64 { return 777 },
	}
	for name, draw := range draws {
		t.Run(name, func(t *testing.T) {
			recs := make([]Record, 1+rng.IntN(20000))
			weights := make([]float64, len(recs))
			for i := range recs {
				w := draw()
				recs[i], weights[i] = valid("a", w), float64(w)
			}
			slices.Sort(weights)
			res := resultAs[struct {
				Q50           *float64 `json:"p50_weight_grams"`
				Q90           *float64 `json:"p90_weight_grams"`
				Q99           *float64 `json:"p99_weight_grams"`
				Registrations int      `json:"registrations"`
			}](t, aggregate(t, "weight_percentiles", recs))
			if res.Registrations != len(recs) {
				t.Fatalf("registrations %d, want %d", res.Registrations, len(recs))
			}
			for q, got := range map[float64]*float64{0.5: res.Q50, 0.9: res.Q90, 0.99: res.Q99} {
				want := weights[int(q*float64(len(weights)-1))]
				if got == nil || math.Abs(*got-want) > PercentileRelativeError*want+0.05 { // + the 0.1 g rounding
					t.Errorf("p%v = %v, exact %v: outside %v relative error", q*100, *got, want, PercentileRelativeError)
				}
			}
		})
	}
}
