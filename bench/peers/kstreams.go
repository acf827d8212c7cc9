package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// The Kafka Streams contenders: the bench/kstreams jar (record cache 64 MB,
// commit interval 100 ms, 2 stream threads), done when its output topic
// shows the exact result. Each run has a fresh application id, so it starts
// from nothing as the other contenders do.
//
//   - kstreams-alos, kstreams-eos: the textbook DSL topology (groupBy a
//     constant key through a repartition topic, aggregate) with
//     at_least_once or exactly_once_v2;
//   - kstreams-pre-eos: pre-aggregation per input partition in the
//     Processor API, then the DSL merges the partitions' running totals;
//     exactly_once_v2, without which its replays would count twice.
type kstreamsConfig struct{ guarantee, topology string }

var kstreamsContenders = map[string]kstreamsConfig{
	"kstreams-alos":    {"at_least_once", "dsl"},
	"kstreams-eos":     {"exactly_once_v2", "dsl"},
	"kstreams-pre-eos": {"exactly_once_v2", "preaggregate"},
}

// startKStreams starts contender name over input with a fresh application id and
// returns the child, its RUNNING marker, the output topic and a cleanup.
func (e *env) startKStreams(ctx context.Context, input, name, tag string) (*benchkit.Child, *benchkit.Marker, string, func(), error) {
	kc := kstreamsContenders[name]
	id := fmt.Sprintf("bench-%s-%s-%d", name, tag, time.Now().UnixNano())
	output := id + "-out"
	state := filepath.Join(e.tmp, "kstreams-state")
	mark := benchkit.NewMarker("RUNNING")
	c, err := benchkit.Start(ctx, e.log(name), mark, "java", "-jar", jarPath,
		"--bootstrap", e.broker, "--input", input, "--output", output, "--application-id", id,
		"--guarantee", kc.guarantee, "--topology", kc.topology, "--state-dir", state)
	cleanup := func() {
		// its group, and its topics: the internal ones share the id as prefix
		_ = deletePrefixed(context.Background(), e.adm, id, id)
		_ = os.RemoveAll(filepath.Join(state, id))
	}
	return c, mark, output, cleanup, err
}

func (e *env) runKStreams(ctx context.Context, b *backlog, name string, run int) result {
	c, mark, output, cleanup, err := e.startKStreams(ctx, b.topic, name, fmt.Sprint(run+1))
	defer cleanup()
	if err != nil {
		return result{note: err.Error()}
	}
	return e.awaitContender(ctx, c, mark, "kafka streams", output, b)
}
