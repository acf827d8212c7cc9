package benchkit

import (
	"cmp"
	"math"
	"slices"
)

// Rank is the q-quantile of sorted by nearest rank (package doc), or the
// zero value if there are none.
func Rank[T cmp.Ordered](sorted []T, q float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Median is the nearest-rank median of xs, NaNs (failed runs) left out, NaN
// if nothing is left; xs is not modified.
func Median(xs []float64) float64 {
	s := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	return Rank(s, 0.5)
}
