// Command wsload load-tests picstats' websocket endpoint /api/ws: it runs
// picstats as one process (embedded broker, processor, API), opens
// --clients websockets, runs a datafeed at --rate for --duration, and
// reports connect time, push latency and the API process's CPU and memory;
// then it checks that every client ends with exactly what GET /api/stats
// serves. Run it from the module root; BENCHMARKS.md says how push latency
// is measured.
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
	clients, dialConcurrency int
	duration                 time.Duration
	rate                     float64
}

const (
	probeInterval   = 5 * time.Millisecond
	quietFor        = 2 * time.Second  // /api/stats unchanged this long: the flow is over
	convergeTimeout = 5 * time.Second  // for every client to match REST after that
	dialTimeout     = 15 * time.Second // per client handshake
)

func main() {
	var cfg config
	flag.IntVar(&cfg.clients, "clients", 1000, "websocket clients to open")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long updates flow to the connected clients")
	flag.Float64Var(&cfg.rate, "rate", 200, "registrations/s of the datafeed")
	flag.IntVar(&cfg.dialConcurrency, "dial-concurrency", 50, "websocket handshakes in flight at once")
	flag.Parse()
	if flag.NArg() > 0 || cfg.clients < 1 || cfg.duration <= 0 || cfg.rate <= 0 || cfg.dialConcurrency < 1 {
		fmt.Fprintln(os.Stderr, "wsload: want --clients ≥ 1, --duration > 0, --rate > 0, --dial-concurrency ≥ 1 and no arguments")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg)
	stop()
	os.Exit(code)
}
