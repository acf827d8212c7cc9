package benchkit

import (
	"cmp"
	"math"
	"slices"
)

// Rank returns the q-quantile of sorted values by the nearest-rank rule
// (package doc), or the zero value if there are none.
func Rank[T cmp.Ordered](sorted []T, q float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Percentile is Rank over xs in any order, NaNs (failed runs) left out; NaN
// if nothing is left. xs is not modified.
func Percentile(xs []float64, q float64) float64 {
	s := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	return Rank(s, q)
}

// Median is Percentile(xs, 0.5).
func Median(xs []float64) float64 { return Percentile(xs, 0.5) }
