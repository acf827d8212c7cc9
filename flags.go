package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/picstats/picstats/api"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/datafeed"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/tail"
)

// options are the parsed flags of one subcommand: what the run functions
// read. A role's flag groups fill the fields it uses and leave the others
// zero.
type options struct {
	cluster          cluster.Config
	addr             string
	maxConns         int
	embeddedPort     int
	feed             datafeed.Config
	tail             tail.Config
	stats            []stats.Kind
	windows          []stats.Kind // the windowed forms of stats (--windows)
	allowedOrigins   []string
	batchSize        int64
	snapshotInterval time.Duration
	windowInterval   time.Duration
	staleAfter       time.Duration
	wedgedAfter      time.Duration
	probeURL         string
	probeTimeout     time.Duration
	metricsAddr      string
	registry         *prometheus.Registry // set by all, so that its roles share one
	logger           *slog.Logger         // with the key role
	unroled          *slog.Logger         // without it
	stdout           io.Writer
}

// A flagGroup is a few flags that go together, shared by the roles that use
// them: register adds them to a role's flag set, apply checks the parsed
// values and puts them into the options.
type flagGroup interface {
	register(fs *flag.FlagSet)
	apply(o *options) error
}

// roleFlags are the flag groups of each role but logging, which every role
// has and which is applied first (the others may log). They are applied in
// this order: the cluster group before tail's, whose default topic has the
// prefix.
var roleFlags = map[string]func() []flagGroup{
	"all": func() []flagGroup {
		return []flagGroup{&clusterFlags{embedded: true}, &topicFlags{}, &embeddedFlags{},
			&statsFlags{uses: "keep and serve"}, &httpFlags{}, &imagesFlags{use: imagesFeedAndAPI}, &feedFlags{}, &processorFlags{}}
	},
	"processor": func() []flagGroup {
		return []flagGroup{&clusterFlags{}, &topicFlags{}, &statsFlags{uses: "keep"}, &processorFlags{}}
	},
	"api": func() []flagGroup {
		return []flagGroup{&clusterFlags{}, &statsFlags{uses: "serve"}, &httpFlags{}, &imagesFlags{use: imagesAPI}}
	},
	"datafeed": func() []flagGroup {
		return []flagGroup{&clusterFlags{}, &topicFlags{}, &imagesFlags{use: imagesFeed}, &feedFlags{}}
	},
	"tail":  func() []flagGroup { return []flagGroup{&clusterFlags{}, &tailFlags{}} },
	"probe": func() []flagGroup { return []flagGroup{&probeFlags{}} }, // needs no cluster
}

// newFlagSet is the flag set of role name: exactly the flags it uses, so a
// typo or a flag of another role stops the program.
func newFlagSet(name, summary string, groups []flagGroup, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("picstats "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: picstats %s [flags]\n\n%s.\n\nFlags:\n", name, upperFirst(summary))
		fs.PrintDefaults()
		if name == "all" {
			fmt.Fprintln(stderr)
			usage(stderr)
		}
	}
	for _, g := range groups {
		g.register(fs)
	}
	return fs
}

// parseFlags parses the flags of subcommand name.
func parseFlags(name, summary string, args []string, stdout, stderr io.Writer) (*options, error) {
	flags, ok := roleFlags[name]
	if !ok {
		return nil, fmt.Errorf("unknown subcommand %q", name)
	}
	groups := append([]flagGroup{&logFlags{}}, flags()...)
	fs := newFlagSet(name, summary, groups, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := &options{stdout: stdout}
	var errs []error
	for _, g := range groups {
		errs = append(errs, g.apply(o))
	}
	return o, errors.Join(errs...)
}

// logFlags: every role.
type logFlags struct{ level, format string }

func (g *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&g.format, "log-format", "text", "log format: text or json")
}

func (g *logFlags) apply(o *options) (err error) {
	o.logger, err = newLogger(g.level, g.format, os.Stderr)
	return err
}

// clusterFlags say which cluster to use and the names on it: every role but
// probe. Only all (embedded) runs without a cluster, on a broker of its own.
type clusterFlags struct {
	embedded bool
	brokers  string
	prefix   string
}

func (g *clusterFlags) register(fs *flag.FlagSet) {
	def := "comma-separated Kafka `host:port` list (default: $KAFKA_BROKER)"
	if g.embedded {
		def = "comma-separated Kafka `host:port` list (default: $KAFKA_BROKER; empty starts an embedded broker)"
	}
	fs.StringVar(&g.brokers, "brokers", os.Getenv("KAFKA_BROKER"), def)
	fs.StringVar(&g.prefix, "topic-prefix", "", "prefix for the group and every topic name, so pipelines can share a cluster")
}

func (g *clusterFlags) apply(o *options) error {
	var err error
	if g.brokers != "" {
		o.cluster.Brokers, err = cluster.ParseBrokers(g.brokers)
		err = flagErr("--brokers", err)
	} else if !g.embedded {
		err = errors.New("no Kafka cluster given: pass --brokers host:port or set KAFKA_BROKER (only 'picstats all' starts an embedded broker)")
	}
	o.cluster.Names = cluster.DefaultNames(g.prefix)
	o.cluster.Logger = o.logger
	return err
}

// topicFlags say how to create missing topics: the roles that create them
// (cluster.WaitAndEnsureTopics), processor and datafeed.
type topicFlags struct{ partitions, replication int }

func (g *topicFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&g.partitions, "partitions", 4, "partitions of the topics picstats creates (picture, stats, picture.rejected)")
	fs.IntVar(&g.replication, "replication", 1, "replication factor of the topics picstats creates (3 or more: with min.insync.replicas=2)")
}

func (g *topicFlags) apply(o *options) error {
	o.cluster.Partitions, o.cluster.Replication = g.partitions, g.replication
	var errs []error
	if g.partitions < 1 {
		errs = append(errs, fmt.Errorf("--partitions %d: want at least 1", g.partitions))
	}
	if g.replication < 1 {
		errs = append(errs, fmt.Errorf("--replication %d: want at least 1", g.replication))
	}
	return errors.Join(errs...)
}

// embeddedFlags: the embedded broker of all.
type embeddedFlags struct{ port int }

func (g *embeddedFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&g.port, "embedded-port", 0, "port of the embedded broker (0: a free one); used only without --brokers")
}

func (g *embeddedFlags) apply(o *options) error {
	o.embeddedPort = g.port
	if g.port < 0 || g.port > 65535 {
		return fmt.Errorf("--embedded-port %d: want 0 to 65535", g.port)
	}
	return nil
}

// statsFlags select the statistics a processor keeps and an API serves.
type statsFlags struct {
	uses    string // what the role does with them: keep, serve, or keep and serve
	spec    string
	windows string
}

func (g *statsFlags) register(fs *flag.FlagSet) {
	help := "statistics to " + g.uses + ": all, a comma-separated `list` of names, or all,-name,... to leave some out"
	if strings.Contains(g.uses, "keep") {
		help += ";\nevery processor of a group needs the same list "
	} else {
		help += "\n"
	}
	help += "(known: " + strings.Join(stats.Names(stats.All()), ", ") + ")"
	fs.StringVar(&g.spec, "stats", "all", help)
	fs.StringVar(&g.windows, "windows", stats.DefaultWindowsSpec, "event-time window sizes to "+g.uses+" every statistic over, each with how long windows are kept\n(size=retention,...; e.g. 1h=48h; days as 35d), or none; a statistic may declare fewer sizes")
}

func (g *statsFlags) apply(o *options) error {
	var err error
	if o.stats, err = stats.Select(g.spec); err != nil {
		return flagErr("--stats", err)
	}
	ws, err := stats.ParseWindows(g.windows)
	if err != nil {
		return flagErr("--windows", err)
	}
	o.windows = stats.WindowedKinds(o.stats, ws)
	return nil
}

// httpFlags: the HTTP API of all and api.
type httpFlags struct {
	addr        string
	maxConns    int
	staleAfter  time.Duration
	wedgedAfter time.Duration
	origins     string
}

func (g *httpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.addr, "addr", ":8080", "HTTP listen `address` of the API")
	fs.IntVar(&g.maxConns, "max-conns", api.DefaultMaxConns, "most HTTP connections open at once, websockets included; beyond it a new one is answered 503 and closed")
	fs.DurationVar(&g.staleAfter, "stale-after", api.DefaultStaleAfter, "/readyz answers 503 once the values were last seen current longer ago than this\n(the view is behind the table or cannot reach the broker); REST goes on serving them")
	fs.DurationVar(&g.wedgedAfter, "wedged-after", api.DefaultWedgedAfter, "/healthz answers 503 once an update of the view or the websocket hub has been stuck this long")
	fs.StringVar(&g.origins, "allowed-origins", "", "comma-separated `origins` (scheme://host[:port]) whose pages may open the websocket /api/ws, or * for any;\nthe API's own origin and clients that send no Origin are always allowed")
}

func (g *httpFlags) apply(o *options) error {
	o.addr, o.maxConns, o.staleAfter, o.wedgedAfter = g.addr, g.maxConns, g.staleAfter, g.wedgedAfter
	var errs []error
	for origin := range strings.SplitSeq(g.origins, ",") {
		if origin = strings.TrimSpace(origin); origin == "" {
			continue
		}
		if u, err := url.Parse(origin); origin != "*" && (err != nil || u.Scheme == "" || u.Host == "" || u.Path != "") {
			errs = append(errs, fmt.Errorf("--allowed-origins: %q is not an origin: want scheme://host[:port] (e.g. https://stats.example.com) or *", origin))
			continue
		}
		o.allowedOrigins = append(o.allowedOrigins, origin)
	}
	if g.staleAfter <= 0 {
		errs = append(errs, fmt.Errorf("--stale-after %v: want more than 0 (e.g. 3s)", g.staleAfter))
	}
	if g.wedgedAfter <= 0 {
		errs = append(errs, fmt.Errorf("--wedged-after %v: want more than 0 (e.g. 30s)", g.wedgedAfter))
	}
	if g.maxConns < 1 {
		errs = append(errs, fmt.Errorf("--max-conns %d: want at least 1", g.maxConns))
	}
	return errors.Join(errs...)
}

// imagesUse is what a role does with the pictures of --images.
type imagesUse int

const (
	imagesFeed       imagesUse = iota // datafeed: registers them; a missing folder is an error
	imagesAPI                         // api: serves them as thumbnails; a missing folder is only a warning
	imagesFeedAndAPI                  // all: both
)

// imagesFlags: the pictures folder of all, datafeed and api.
type imagesFlags struct {
	use    imagesUse
	folder string
}

func (g *imagesFlags) register(fs *flag.FlagSet) {
	var help string
	switch g.use {
	case imagesFeed:
		help = "`folder` of *.jpg pictures; a picture's id is its base name"
	case imagesAPI:
		help = "`folder` of *.jpg pictures served at /images/ as the dashboard's thumbnails; a missing folder is only a warning"
	case imagesFeedAndAPI:
		help = "`folder` of *.jpg pictures; a picture's id is its base name (the API serves them at /images/ as the dashboard's thumbnails)"
	}
	fs.StringVar(&g.folder, "images", "images", help)
}

func (g *imagesFlags) apply(o *options) error {
	o.feed.Images = g.folder
	if fi, err := os.Stat(g.folder); err == nil && fi.IsDir() {
		return nil
	}
	if g.use == imagesAPI { // the thumbnails are a nicety: the API serves the statistics without them
		o.logger.Warn("--images is not a folder: the dashboard shows no thumbnails until it exists (run from the repository root or pass the images folder)", "images", g.folder)
		return nil
	}
	return fmt.Errorf("--images %s: not a folder; run from the repository root or pass the images folder", g.folder)
}

// feedFlags: what the datafeed of all and datafeed produces.
type feedFlags struct {
	rate  float64
	count int
	key   string
}

func (g *feedFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&g.rate, "rate", 0, "registrations per second (0: one every 2-4 s, like the original feed)")
	fs.IntVar(&g.count, "count", 0, "number of registrations to produce (0: until stopped)")
	fs.StringVar(&g.key, "key", string(datafeed.KeyNone), "record key: none (null, like the original feed) or picture_id")
}

func (g *feedFlags) apply(o *options) error {
	var errs []error
	var err error
	o.feed.Rate, o.feed.Count = g.rate, g.count
	o.feed.Key, err = datafeed.ParseKey(g.key)
	errs = append(errs, flagErr("--key", err))
	if g.rate < 0 {
		errs = append(errs, fmt.Errorf("--rate %g: want 0 (the original pacing) or a positive rate", g.rate))
	}
	if g.count < 0 {
		errs = append(errs, fmt.Errorf("--count %d: want 0 (no limit) or more", g.count))
	}
	return errors.Join(errs...)
}

// processorFlags: the micro-batches and the metrics address of all and
// processor.
type processorFlags struct {
	batchSize        int64
	snapshotInterval time.Duration
	windowInterval   time.Duration
	metricsAddr      string
	membership       cluster.Membership
}

func (g *processorFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&g.membership.SessionTimeout, "session-timeout", cluster.DefaultSessionTimeout, "a processor that sends no heartbeat for this long (killed, paused) loses its partitions to the others;\nalso how long a rebalance waits for members to rejoin (Apache Kafka accepts 6s to 30m by default)")
	fs.DurationVar(&g.membership.HeartbeatInterval, "heartbeat-interval", cluster.DefaultHeartbeatInterval, "how often a processor heartbeats to its groups' coordinator: the others join a rebalance at most this late")
	fs.StringVar(&g.membership.InstanceID, "instance-id", "", "static group membership (group.instance.id) for both consumer groups: restarted with the same `id`\nwithin --session-timeout, the processor gets its partitions back without a rebalance; a SIGTERM still\nleaves at once. Must be unique among running processors; empty: dynamic membership")
	fs.Int64Var(&g.batchSize, "batch-size", processor.DefaultBatchSize, "input offsets per micro-batch: commits happen at batch boundaries")
	fs.DurationVar(&g.snapshotInterval, "snapshot-interval", processor.DefaultSnapshotInterval, "the least time between two snapshots of a partition's open batch; one with news is sent\nas soon as the previous is acknowledged and this old (bounds the table's write rate)")
	fs.DurationVar(&g.windowInterval, "window-snapshot-interval", processor.DefaultWindowInterval, "how often open batches of the windowed statistics are sent to the table\n(their values hold every window kept: each write costs more)")
	fs.StringVar(&g.metricsAddr, "metrics-addr", "", "HTTP listen `address` of the processor's /metrics, /healthz and /readyz (e.g. :9100); empty: none")
}

func (g *processorFlags) apply(o *options) error {
	o.batchSize, o.snapshotInterval, o.windowInterval, o.metricsAddr = g.batchSize, g.snapshotInterval, g.windowInterval, g.metricsAddr
	o.cluster.Membership = g.membership
	var errs []error
	if err := g.membership.Check(); err != nil {
		errs = append(errs, fmt.Errorf("--session-timeout, --heartbeat-interval, --instance-id: %w", err))
	}
	if g.batchSize < 1 {
		errs = append(errs, fmt.Errorf("--batch-size %d: want at least 1", g.batchSize))
	}
	if g.snapshotInterval <= 0 {
		errs = append(errs, fmt.Errorf("--snapshot-interval %v: want more than 0", g.snapshotInterval))
	}
	if g.windowInterval < g.snapshotInterval {
		errs = append(errs, fmt.Errorf("--window-snapshot-interval %v: want at least --snapshot-interval (%v)", g.windowInterval, g.snapshotInterval))
	}
	return errors.Join(errs...)
}

// tailFlags: what tail prints. Applied after clusterFlags, whose names give
// the default topic.
type tailFlags struct{ cfg tail.Config }

func (g *tailFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.cfg.Topic, "topic", "", "topic to print (default: the picture topic, with --topic-prefix)")
	fs.BoolVar(&g.cfg.FromBeginning, "from-beginning", true, "start at the oldest record; false starts at the newest")
	fs.IntVar(&g.cfg.Count, "count", 0, "exit after this many records (0: until stopped)")
}

func (g *tailFlags) apply(o *options) error {
	o.tail = g.cfg
	if o.tail.Topic == "" {
		o.tail.Topic = string(o.cluster.Names.Pictures)
	}
	if g.cfg.Count < 0 {
		return fmt.Errorf("--count %d: want 0 (no limit) or more", g.cfg.Count)
	}
	return nil
}

// probeFlags: the health check probe.
type probeFlags struct {
	url     string
	timeout time.Duration
}

func (g *probeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", "http://127.0.0.1:8080/readyz", "`URL` to GET")
	fs.DurationVar(&g.timeout, "timeout", 3*time.Second, "give up after this long")
}

func (g *probeFlags) apply(o *options) error {
	o.probeURL, o.probeTimeout = g.url, g.timeout
	return nil
}

func flagErr(flag string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", flag, err)
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return slog.New(slog.NewTextHandler(w, nil)), fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), fmt.Errorf("--log-format %q: want text or json", format)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
