package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The Kafka Streams contenders: the bench/kstreams jar (DSL topology, record
// cache 64 MB, commit interval 100 ms, 2 stream threads) with
// at_least_once or exactly_once_v2, done when its output topic shows the
// exact result. Each run has a fresh application id, so it starts from
// nothing as the other contenders do.

var guaranteeShort = map[string]string{"at_least_once": "alos", "exactly_once_v2": "eos"}

// startKStreams starts the jar over input with a fresh application id and
// returns the child, its RUNNING marker, the output topic and a cleanup.
func (e *env) startKStreams(ctx context.Context, input, guarantee, tag string) (*child, *marker, string, func(), error) {
	short := guaranteeShort[guarantee]
	id := fmt.Sprintf("bench-kstreams-%s-%s-%d", short, tag, time.Now().UnixNano())
	output := id + "-out"
	state := filepath.Join(e.tmp, "kstreams-state")
	mark := newMarker("RUNNING")
	c, err := startChild(ctx, e.log("kstreams-"+short), mark, "java", "-jar", jarPath,
		"--bootstrap", e.broker, "--input", input, "--output", output, "--application-id", id,
		"--guarantee", guarantee, "--state-dir", state)
	cleanup := func() {
		// its group, and its topics: the internal ones share the id as prefix
		_ = deletePrefixed(context.Background(), e.adm, id, id)
		_ = os.RemoveAll(filepath.Join(state, id))
	}
	return c, mark, output, cleanup, err
}

func (e *env) runKStreams(ctx context.Context, input string, b *backlog, guarantee string, run int) result {
	c, mark, output, cleanup, err := e.startKStreams(ctx, input, guarantee, fmt.Sprint(run+1))
	defer cleanup()
	if err != nil {
		return result{note: err.Error()}
	}
	return e.awaitContender(ctx, c, mark, "kafka streams", output, b)
}
