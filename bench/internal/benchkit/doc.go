// Package benchkit is what the benchmark drivers under bench/ share: child
// processes with their CPU time and memory, the bare consumer every drain is
// measured against, producing, polling, HTTP and medians.
//
// One rule for every median and percentile: nearest rank. The q-quantile of
// n values is the ⌈q·n⌉-th smallest (the smallest for q = 0), so the median
// of an even number of values is the lower middle one, and every reported
// figure is a value that was measured.
package benchkit
