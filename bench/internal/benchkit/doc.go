// Package benchkit is what the benchmark drivers under bench/ share: free
// ports, child processes with their CPU time and memory, medians and
// percentiles, tables, HTTP polling, and the bare consumer that every drain
// is measured against.
//
// One rule for every median and percentile: nearest rank. The q-quantile of
// n values is the ⌈q·n⌉-th smallest (the smallest for q = 0), so the median
// of an odd number of values is the middle one, of an even number the lower
// of the two middle ones, and every reported figure is a value that was
// measured.
package benchkit
