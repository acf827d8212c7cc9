package main

import (
	"context"
	"strconv"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
)

// The picstats contender: `picstats processor` with the four statistics
// every contender computes, done when its stats topic shows the exact
// result (the API is not needed for that, and the recovery phase measures
// it).

// picstatsArgs are the flags of a picstats role over backlog prefix; the
// processor creates the topics it lacks with the benchmark's partitions
// (the api role has no --partitions).
func picstatsArgs(role, broker, prefix, stats string, extra ...string) []string {
	args := []string{role, "--brokers", broker, "--topic-prefix", prefix, "--stats", stats}
	if role == "processor" {
		args = append(args, "--partitions", strconv.Itoa(partitions))
	}
	return append(args, extra...)
}

func (e *env) runPicstats(ctx context.Context, b *backlog) result {
	if err := resetPicstats(ctx, e, b.prefix); err != nil {
		return result{note: "reset: " + err.Error()}
	}
	mark := benchkit.NewMarker("processor ready")
	p, err := benchkit.Start(ctx, e.log("picstats-processor"), mark, e.picstats, picstatsArgs("processor", e.broker, b.prefix, statsList)...)
	if err != nil {
		return result{note: err.Error()}
	}
	return e.awaitContender(ctx, p, mark, "picstats processor", string(cluster.DefaultNames(b.prefix).Stats), b)
}

// resetPicstats deletes picstats' groups and every topic under prefix but
// the input, so that a run starts from nothing.
func resetPicstats(ctx context.Context, e *env, prefix string) error {
	n := cluster.DefaultNames(prefix)
	topics := []string{string(n.Table()), string(n.Snapshots()), string(n.Stats), string(n.Rejected)}
	return deleteAll(ctx, e.adm, picstatsGroups(prefix), topics)
}

// picstatsGroups are the consumer groups of picstats' processor under prefix.
func picstatsGroups(prefix string) []string {
	n := cluster.DefaultNames(prefix)
	return []string{string(n.Group), n.InputGroup()}
}
