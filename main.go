// Command picstats keeps live statistics over picture registrations on Kafka.
//
// Each subcommand is one role of the pipeline; with none it runs them all in
// one process, on an embedded broker unless a cluster is given:
//
//	picstats [all]      datafeed + processor + API (embedded broker by default)
//	picstats processor  aggregate the picture topic into the group table
//	picstats api        serve the statistics over HTTP from a view of the table
//	picstats datafeed   produce random registrations on the picture topic
//	picstats tail       print every record of a topic
//	picstats probe      GET a URL and exit 0 if it answers 200 (health checks)
//
// Run "picstats <subcommand> --help" for the flags of each: a role takes
// only the flags it uses (flags.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/picstats/picstats/api"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/datafeed"
	"github.com/picstats/picstats/hub"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/tail"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type role struct {
	summary string
	run     func(ctx context.Context, o *options) error
}

var roles = map[string]role{
	"all":       {"run datafeed, processor and API in one process (the default)", runAll},
	"processor": {"aggregate the picture topic into the group table and the stats topic", runProcessor},
	"api":       {"serve the statistics over HTTP from a view of the group table", runAPI},
	"datafeed":  {"produce random registrations on the picture topic", runDatafeed},
	"tail":      {"print every record of a topic, like the original skeleton consumer", runTail},
	"probe":     {"GET a URL and exit 0 if it answers 200, for container health checks", runProbe},
}

var roleOrder = []string{"all", "processor", "api", "datafeed", "tail", "probe"}

func run(args []string, stdout, stderr io.Writer) int {
	name := "all"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	r, ok := roles[name]
	if !ok {
		fmt.Fprintf(stderr, "picstats: unknown subcommand %q\n\n", name)
		usage(stderr)
		return 2
	}
	o, err := parseFlags(name, r.summary, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "picstats %s: %v\nRun 'picstats %s --help' for the flags.\n", name, err, name)
		return 2
	}

	o.unroled = o.logger // all gives each of its roles its own (withRole)
	o.logger = o.logger.With("role", name)
	o.cluster.Logger = o.logger
	// The first Ctrl-C or SIGTERM shuts down cleanly; a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	if err := r.run(ctx, o); err != nil {
		o.logger.Error("picstats "+name+" failed", "err", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: picstats [subcommand] [flags]\n\nSubcommands:\n")
	for _, n := range roleOrder {
		fmt.Fprintf(w, "  %-10s %s\n", n, roles[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'picstats <subcommand> --help' for its flags.\n")
}

// runAll is the one-command demo: an embedded broker (unless one is given),
// the topics, and the three roles in one process.
func runAll(ctx context.Context, o *options) error {
	if len(o.cluster.Brokers) == 0 {
		var eopts []cluster.EmbeddedOption
		if o.embeddedPort != 0 {
			eopts = append(eopts, cluster.WithPort(o.embeddedPort))
		}
		broker, err := cluster.StartEmbedded(eopts...)
		if err != nil {
			return err
		}
		defer broker.Close()
		o.cluster.Brokers = broker.Brokers()
		o.logger.Info("embedded Kafka-compatible broker started (in memory, gone on exit)", "brokers", o.cluster.Brokers)
	}
	o.registry = newRegistry() // one for every role: the API's /metrics serves them all
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return runProcessor(ctx, o.withRole("processor")) })
	g.Go(func() error { return runAPI(ctx, o.withRole("api")) })
	g.Go(func() error { return runDatafeed(ctx, o.withRole("datafeed")) })
	return g.Wait()
}

// withRole returns a copy of o whose logs say which role of all they
// come from.
func (o *options) withRole(role string) *options {
	c := *o
	c.logger = o.unroled.With("role", role)
	c.cluster.Logger = c.logger
	return &c
}

// newRegistry is a Prometheus registry with the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// brokerWait is how long a role waits for an unreachable cluster at start.
const brokerWait = time.Minute

func runProcessor(ctx context.Context, o *options) error {
	reg := o.registry
	if reg == nil {
		reg = newRegistry()
	}
	p, err := processor.New(o.cluster.Names, o.stats, o.logger, processor.WithMetrics(processor.NewMetrics(reg)),
		processor.WithBatchSize(o.batchSize), processor.WithSnapshotInterval(o.snapshotInterval),
		processor.WithWindows(o.windows, o.windowInterval))
	if err != nil {
		return err
	}
	if o.metricsAddr != "" { // before waiting for the cluster: the probes say what the processor waits for
		stop, err := serveProcessorHTTP(o, p, reg)
		if err != nil {
			return err
		}
		defer stop()
	}
	if err := cluster.WaitAndEnsureTopics(ctx, o.cluster, brokerWait); err != nil {
		return err
	}
	o.logger.Info("processor starting", "group", o.cluster.Names.Group, "input", o.cluster.Names.Pictures,
		"brokers", o.cluster.Brokers, "stats", stats.Names(o.stats), "batch_size", o.batchSize, "snapshot_interval", o.snapshotInterval,
		"session_timeout", o.cluster.Membership.Session(), "heartbeat_interval", o.cluster.Membership.Heartbeat(), "instance_id", o.cluster.Membership.InstanceID)
	cluster.LogSarama(o.logger)
	if err := p.Run(ctx, o.cluster); err != nil {
		return err
	}
	o.logger.Info("processor stopped")
	return nil
}

// serveProcessorHTTP serves the processor's /metrics, /healthz and /readyz
// on --metrics-addr until stop is called.
func serveProcessorHTTP(o *options, p *processor.Processor, reg *prometheus.Registry) (stop func(), err error) {
	ln, err := net.Listen("tcp", o.metricsAddr)
	if err != nil {
		return nil, fmt.Errorf("processor: listen on %s (choose another with --metrics-addr): %w", o.metricsAddr, err)
	}
	m := http.NewServeMux()
	m.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.HandleFunc("GET /healthz", p.Healthz)
	m.HandleFunc("GET /readyz", p.Readyz)
	hs := &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 2 * time.Minute}
	url := "http://" + displayAddr(ln.Addr())
	fmt.Fprintf(o.stdout, "picstats processor metrics and probes listening on %s  (%s/metrics, /healthz, /readyz)\n", url, url)
	o.logger.Info("processor metrics and probes listening", "url", url)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			o.logger.Error("processor metrics server", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-served
	}, nil
}

func runAPI(ctx context.Context, o *options) error {
	reg := o.registry
	if reg == nil {
		reg = newRegistry()
	}
	srv := api.New(o.stats, o.logger, api.WithHubOptions(hub.WithAllowedOrigins(o.allowedOrigins...)),
		api.WithStaleAfter(o.staleAfter), api.WithWedgedAfter(o.wedgedAfter), api.WithMetrics(reg, reg), api.WithWindows(o.windows))
	srv.ServeImages(o.feed.Images) // the dashboard's thumbnails
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("api: listen on %s (choose another with --addr): %w", o.addr, err)
	}
	ln = api.LimitConnections(ln, o.maxConns, o.logger) // beyond --max-conns: a 503 at once
	hs := api.NewHTTPServer(srv.Handler())              // read, write (not /api/ws) and idle timeouts
	url := "http://" + displayAddr(ln.Addr())
	fmt.Fprintf(o.stdout, "picstats API listening on %s  (try: curl -s %s/api/stats/count)\n", url, url)
	o.logger.Info("api listening", "url", url)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api: %w", err)
		}
		return nil
	})
	g.Go(func() error { return api.RunView(ctx, o.cluster, srv) })
	g.Go(func() error { return srv.Hub().Run(ctx) }) // closes websocket clients on shutdown
	g.Go(func() error { srv.LogProgress(ctx); return nil })
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(shutdownCtx)
	})
	return g.Wait()
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return tcp.String()
}

func runDatafeed(ctx context.Context, o *options) error {
	if err := cluster.WaitAndEnsureTopics(ctx, o.cluster, brokerWait); err != nil {
		return err
	}
	cl, err := o.cluster.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	o.feed.Topic = string(o.cluster.Names.Pictures)
	_, err = datafeed.Run(ctx, cl, o.feed, o.logger)
	return err
}

func runTail(ctx context.Context, o *options) error {
	cl, err := o.cluster.Client(o.tail.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return tail.Run(ctx, cl, o.tail, o.stdout)
}

// runProbe is the health check of the container image, which has no curl.
func runProbe(ctx context.Context, o *options) error {
	ctx, cancel := context.WithTimeout(ctx, o.probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.probeURL, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %s", o.probeURL, resp.Status)
	}
	return nil
}
