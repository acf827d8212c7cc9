package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lovoo/goka"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/stats"
)

// How each drain contender is started, and when it is done.

// runBare runs benchkit.ReadAll (the bare consumer of `go run ./bench`
// too) as a child, which writes what it saw as JSON; done when it exits.
func (e *env) runBare(ctx context.Context, b *backlog) result {
	report := filepath.Join(e.tmp, "bare-report.json")
	r := result{ready: math.NaN()}
	c, err := benchkit.Start(ctx, e.log("bare"), nil, e.self, "--mode", "bare", e.broker, b.topic, report)
	if err != nil {
		return result{note: err.Error()}
	}
	select {
	case <-c.Done:
	case <-time.After(timeout):
		r.note = "timeout"
	}
	r.seconds = time.Since(c.Start).Seconds()
	if r.cpu, r.rssMB = c.Stop(); c.Err != nil {
		c.PrintTail("bare")
		r.note = c.ExitNote("bare")
		return r
	}
	var rep benchkit.Bare
	raw, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(raw, &rep)
	}
	if err != nil {
		r.note = fmt.Sprintf("report: %v", err)
		return r
	}
	r.ready = rep.First.Sub(c.Start).Seconds()
	if rep.Valid != b.exp.count || rep.Sum != b.exp.total || rep.Min != b.exp.min || rep.Max != b.exp.max {
		r.note = fmt.Sprintf("got count %d sum %d min %d max %d", rep.Valid, rep.Sum, rep.Min, rep.Max)
		return r
	}
	if rep.Records > 0 {
		b.valueBytes = float64(rep.Bytes) / float64(rep.Records)
	}
	r.ok = true
	return r
}

// bareChild reads every record of topic and writes what it saw to report.
func bareChild(broker, topic, report string) error {
	b, err := benchkit.ReadAll(context.Background(), []string{broker}, topic)
	if err != nil {
		return err
	}
	out, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return os.WriteFile(report, out, 0o644)
}

// start starts contender name (not bare) over input from nothing; prefix
// names picstats' topics, tag the run. It returns the child, its ready
// marker (nil: none), its output topic and a cleanup to call in any case.
func (e *env) start(ctx context.Context, name, prefix, input, tag string) (*benchkit.Child, *benchkit.Marker, string, func(), error) {
	switch name {
	case "picstats": // done when its stats topic is exact: the recovery phase measures the API
		output, err := e.resetPicstats(ctx, prefix)
		if err != nil {
			return nil, nil, "", func() {}, err
		}
		mark := benchkit.NewMarker("processor ready")
		c, err := benchkit.Start(ctx, e.log(tag+"-picstats"), mark, e.picstats, picstatsArgs("processor", e.broker, prefix, picstatsStats, partitions)...)
		return c, mark, output, func() {}, err
	case "goka-naive": // naive.go; its output is the group table's changelog
		group := prefix + "naive"
		cleanup := func() { _ = deletePrefixed(context.Background(), e.adm, group, group) }
		if err := deletePrefixed(ctx, e.adm, group, group); err != nil {
			return nil, nil, "", cleanup, fmt.Errorf("reset: %w", err)
		}
		c, err := benchkit.Start(ctx, e.log(tag+"-goka-naive"), nil, e.self, "--mode", "goka-naive", e.broker, input, group)
		return c, nil, string(goka.GroupTable(goka.Group(group))), cleanup, err
	}
	// Kafka Streams, with a fresh application id
	id := fmt.Sprintf("bench-%s-%s-%d", name, tag, time.Now().UnixNano())
	state, mark := filepath.Join(e.tmp, "kstreams-state"), benchkit.NewMarker("RUNNING")
	c, err := benchkit.Start(ctx, e.log(tag+"-"+name), mark, "java", "-jar", jarPath, "--bootstrap", e.broker, "--input", input,
		"--output", id+"-out", "--application-id", id, "--guarantee", kstreamsConfigs[name][0],
		"--topology", kstreamsConfigs[name][1], "--state-dir", state)
	return c, mark, id + "-out", func() {
		_ = deletePrefixed(context.Background(), e.adm, id, id) // its group, and its topics: the internal ones share the id as prefix
		_ = os.RemoveAll(filepath.Join(state, id))
	}, err
}

// resetPicstats deletes picstats' groups and the topics it writes under
// prefix, but not its input, so that a processor starts from nothing over
// the same backlog; it returns the stats topic.
func (e *env) resetPicstats(ctx context.Context, prefix string) (string, error) {
	n := cluster.DefaultNames(prefix)
	if err := deleteAll(ctx, e.adm, picstatsGroups(prefix), []string{string(n.Table()), string(n.Snapshots()), string(n.Stats), string(n.Rejected)}); err != nil {
		return "", fmt.Errorf("reset: %w", err)
	}
	return string(n.Stats), nil
}

// picstatsWindows is picstats' --windows in every role (peers' --windows).
var picstatsWindows = stats.DefaultWindowsSpec

// picstatsStats is picstats' --stats in the drain and the recovery after it
// (peers' --stats); the other contenders always compute statsList, which
// any list picstats is given must include.
var picstatsStats = statsList

// picstatsArgs are the flags of a picstats role over backlog prefix; the
// processor creates the topics it lacks with parts partitions, the
// backlog's (0 for the api role, which has no --partitions).
func picstatsArgs(role, broker, prefix, stats string, parts int, extra ...string) []string {
	args := []string{role, "--brokers", broker, "--topic-prefix", prefix, "--stats", stats, "--windows", picstatsWindows}
	if parts > 0 {
		args = append(args, "--partitions", strconv.Itoa(parts))
	}
	return append(args, extra...)
}

// picstatsGroups are the consumer groups of picstats' processor under prefix.
func picstatsGroups(prefix string) []string {
	n := cluster.DefaultNames(prefix)
	return []string{string(n.Group), n.InputGroup()}
}

// The Kafka Streams contenders run the bench/kstreams jar (record cache
// 64 MB, commit interval 100 ms, 2 stream threads): the textbook DSL
// topology (groupBy a constant key through a repartition topic, aggregate)
// at least once or exactly once, or pre-aggregating per input partition in
// the Processor API with exactly_once_v2, without which its replays would
// count twice.
var kstreamsConfigs = map[string][2]string{ // guarantee, topology
	"kstreams-alos":    {"at_least_once", "dsl"},
	"kstreams-eos":     {"exactly_once_v2", "dsl"},
	"kstreams-pre-eos": {"exactly_once_v2", "preaggregate"},
}
