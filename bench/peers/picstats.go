package main

import (
	"context"
	"strconv"
)

// The picstats contender: `picstats processor` with the four statistics
// every contender computes, done when its stats topic shows the exact
// result (the API is not needed for that, and the recovery phase measures
// it).

// picstatsArgs are the flags of a picstats role over backlog prefix.
func picstatsArgs(role, broker, prefix, stats string, extra ...string) []string {
	return append([]string{role, "--brokers", broker, "--topic-prefix", prefix, "--partitions", strconv.Itoa(partitions),
		"--stats", stats}, extra...)
}

func (e *env) runPicstats(ctx context.Context, b *backlog) result {
	if err := resetPicstats(ctx, e, b.prefix); err != nil {
		return result{note: "reset: " + err.Error()}
	}
	mark := newMarker("processor ready")
	p, err := startChild(ctx, e.log("picstats-processor"), mark, e.picstats, picstatsArgs("processor", e.broker, b.prefix, statsList)...)
	if err != nil {
		return result{note: err.Error()}
	}
	return e.awaitContender(ctx, p, mark, "picstats processor", b.prefix+"stats", b)
}

// resetPicstats deletes picstats' groups and every topic under prefix but
// the input, so that a run starts from nothing.
func resetPicstats(ctx context.Context, e *env, prefix string) error {
	groups := []string{prefix + "picstats", prefix + "picstats-input"}
	topics := []string{prefix + "picstats-table", prefix + "picstats-snapshots", prefix + "stats", prefix + "picture.rejected"}
	return deleteAll(ctx, e.adm, groups, topics)
}
