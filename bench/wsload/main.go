// Command wsload load-tests picstats' websocket endpoint /api/ws: it opens
// many clients, measures connect times and push latency while registrations
// flow, then checks that every client ends with exactly the statistics REST
// serves.
//
// Usage (from the module root):
//
//	go run ./bench/wsload [--clients 1000] [--duration 20s] [--rate 200] [--dial-concurrency 50]
//	go run ./bench/wsload --url http://127.0.0.1:8080 [--api-pid PID] [--no-check]
//
// Without --url it runs the pipeline itself, each process a child that
// dies with wsload:
//
//  1. go build -o $TMP/picstats .
//  2. picstats --rate R --count 1 --addr 127.0.0.1:<free> --embedded-port <free>
//     (embedded broker, processor, API; the feed stops after 1 registration)
//  3. once /readyz is 200 and every client holds its snapshot:
//     picstats datafeed --brokers 127.0.0.1:<embedded-port> --rate R --count R×duration
//     the updates flow for --duration, then the feed stops on its own, so
//     the final check compares against values that no longer change.
//
// Splitting the feed off keeps the connect storm and the measured window
// apart, and leaves the API process's CPU time free of the producer's.
//
// Push latency, per (client, count value): T0 is when a probe goroutine, which
// polls GET /api/stats/count every 5 ms, sent the first request whose answer
// held that value; T1 is when the client finished reading an update message
// whose "count" carries that value. latency = T1 − T0. The REST value is
// stored before the hub is told, so T0 is at most one poll (5 ms plus one GET)
// after the value became observable: latencies are under-stated by up to
// that much, and a few may be negative when a push beats the probe.
//
// With --url the tool cannot stop the feed: for the convergence check the
// feed must be stopped (the check waits up to 10 s for /api/stats to stop
// changing for 2 s and fails otherwise), or pass --no-check.
//
// Exit status: 0 all good; 1 a connection failed or was dropped, a message
// broke the protocol, or a client's final statistics differ from REST;
// 2 the test could not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	url             string
	clients         int
	duration        time.Duration
	rate            float64
	dialConcurrency int
	noCheck         bool
	apiPID          int
}

const (
	probeInterval   = 5 * time.Millisecond
	quietFor        = 2 * time.Second  // /api/stats unchanged this long: quiescent
	convergeTimeout = 5 * time.Second  // for every client to match REST
	dialTimeout     = 15 * time.Second // per client handshake
)

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "", "API base `URL` (e.g. http://127.0.0.1:8080); empty: start the pipeline (run from the module root)")
	flag.IntVar(&cfg.clients, "clients", 1000, "websocket clients to open")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long updates flow to the connected clients")
	flag.Float64Var(&cfg.rate, "rate", 200, "registrations/s of the datafeed the tool starts (without --url)")
	flag.IntVar(&cfg.dialConcurrency, "dial-concurrency", 50, "websocket handshakes in flight at once")
	flag.BoolVar(&cfg.noCheck, "no-check", false, "skip the final check against REST (needed with --url if the feed keeps running)")
	flag.IntVar(&cfg.apiPID, "api-pid", 0, "with --url: `pid` of the API process, to sample its CPU time and RSS")
	flag.Parse()
	if flag.NArg() > 0 || cfg.clients < 1 || cfg.duration <= 0 || cfg.rate <= 0 || cfg.dialConcurrency < 1 {
		fmt.Fprintln(os.Stderr, "wsload: want --clients ≥ 1, --duration > 0, --rate > 0, --dial-concurrency ≥ 1 and no arguments")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg, os.Stdout)
	stop()
	os.Exit(code)
}
