package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// scalingPartitions are the partitions of the scaling phase's backlog, and
// so the most processes that can share its input.
const scalingPartitions = 8

// scaling produces a backlog of n records on scalingPartitions partitions
// and, o.runs times, drains it with the bare consumer (if a contender),
// then with each number of picstats processor processes in --processors,
// started at once from nothing (fresh groups, table and output topics) over
// the same records. Each row's ratio is to the first number of processes
// in the same run. On one machine the processes share its cores with the
// broker: the CPU seconds per million records say whether the work is
// split or repeated, records/s what this machine gives.
func (e *env) scaling(ctx context.Context, n int) error {
	b, err := e.produce(ctx, fmt.Sprintf("bench.scaling.%d.", n), n, scalingPartitions)
	if err != nil {
		return err
	}
	ref := fmt.Sprintf("vs %d proc", e.o.processors[0])
	fmt.Printf("== scaling: %d records on %d partitions, picstats with %v processor processes ==\n", b.n, b.parts, e.o.processors)
	var all [][]result
	for i := range e.o.runs {
		var rs []result
		if slices.Contains(e.o.contenders, "bare") {
			r := e.runBare(ctx, b)
			r.finish("bare", b.n, i)
			rs = append(rs, r)
		}
		var base float64 // the first number of processes' rate
		for j, p := range e.o.processors {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r := e.awaitProcessors(ctx, b, p, i)
			r.finish(strconv.Itoa(p), b.n, i)
			if j == 0 {
				base = r.rate
			}
			r.ratio = r.rate / base
			rs = append(rs, r)
		}
		fmt.Printf("\n%d records on %d partitions, run %d of %d (rows: bare or picstats processes):\n", b.n, b.parts, i+1, e.o.runs)
		resultTable(rs, b.n, "processes", ref)
		all = append(all, rs)
	}
	fmt.Printf("%d records on %d partitions, medians over %d runs (%s = median of the runs' ratios; CPU s = all processes; RSS MB = the largest process's peak):\n",
		b.n, b.parts, e.o.runs, ref)
	resultTable(medians(all), b.n, "processes", ref)
	return nil
}

// awaitProcessors starts procs picstats processors at once over b from
// nothing and awaits the exact result on their stats topic.
func (e *env) awaitProcessors(ctx context.Context, b *backlog, procs, run int) result {
	output, err := e.resetPicstats(ctx, b.prefix)
	if err != nil {
		return result{note: err.Error()}
	}
	var chs []*benchkit.Child
	var marks []*benchkit.Marker
	for i := range procs {
		mark := benchkit.NewMarker("processor ready")
		c, err := benchkit.Start(ctx, e.log(fmt.Sprintf("%d-scaling-%d-of-%d", run+1, i+1, procs)), mark, e.picstats,
			picstatsArgs("processor", e.broker, b.prefix, picstatsStats, b.parts)...)
		if err != nil {
			for _, c := range chs {
				c.Stop()
			}
			return result{note: err.Error()}
		}
		chs, marks = append(chs, c), append(marks, mark)
	}
	return awaitAll(ctx, e.broker, "processor", chs, marks, output, b.exp)
}
