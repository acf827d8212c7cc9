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

	"github.com/picstats/picstats/api"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/datafeed"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/tail"
)

// options are the parsed flags of one subcommand.
type options struct {
	cluster          cluster.Config
	addr             string
	maxConns         int
	embeddedPort     int
	feed             datafeed.Config
	tail             tail.Config
	stats            []stats.Kind
	allowedOrigins   []string
	batchSize        int64
	snapshotInterval time.Duration
	staleAfter       time.Duration
	wedgedAfter      time.Duration
	probeURL         string
	probeTimeout     time.Duration
	logger           *slog.Logger
	stdout           io.Writer
}

// parseFlags parses the flags of subcommand name. The flags a role does not
// use are not offered, so a typo or a misplaced flag stops the program.
func parseFlags(name, summary string, args []string, stdout, stderr io.Writer) (*options, error) {
	o := &options{stdout: stdout}
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

	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if name == "probe" { // needs no cluster
		fs.StringVar(&o.probeURL, "url", "http://127.0.0.1:8080/readyz", "`URL` to GET")
		fs.DurationVar(&o.probeTimeout, "timeout", 3*time.Second, "give up after this long")
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() > 0 {
			return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		var err error
		o.logger, err = newLogger(*logLevel, *logFormat, os.Stderr)
		return o, err
	}

	brokers := fs.String("brokers", os.Getenv("KAFKA_BROKER"),
		"comma-separated Kafka `host:port` list (default: $KAFKA_BROKER"+map[bool]string{true: "; empty starts an embedded broker)", false: ")"}[name == "all"])
	prefix := fs.String("topic-prefix", "", "prefix for the group and every topic name, so pipelines can share a cluster")
	fs.IntVar(&o.cluster.Partitions, "partitions", 4, "partitions of the topics picstats creates (picture, stats, picture.rejected)")
	fs.IntVar(&o.cluster.Replication, "replication", 1, "replication factor of the topics picstats creates")

	uses := func(roles ...string) bool {
		for _, r := range roles {
			if r == name {
				return true
			}
		}
		return false
	}
	var origins string
	if uses("all", "api") {
		fs.StringVar(&o.addr, "addr", ":8080", "HTTP listen `address` of the API")
		fs.IntVar(&o.maxConns, "max-conns", api.DefaultMaxConns, "most HTTP connections open at once, websockets included; beyond it a new one is answered 503 and closed")
		fs.DurationVar(&o.staleAfter, "stale-after", api.DefaultStaleAfter, "/readyz answers 503 once the values were last seen current longer ago than this\n(the view is behind the table or cannot reach the broker); REST goes on serving them")
		fs.DurationVar(&o.wedgedAfter, "wedged-after", api.DefaultWedgedAfter, "/healthz answers 503 once an update of the view or the websocket hub has been stuck this long")
		fs.StringVar(&origins, "allowed-origins", "", "comma-separated `origins` (scheme://host[:port]) whose pages may open the websocket /api/ws, or * for any;\nthe API's own origin and clients that send no Origin are always allowed")
	}
	statSpec := "all"
	if uses("all", "processor", "api") {
		fs.StringVar(&statSpec, "stats", "all", "statistics to keep (processor) and serve (api): all, a comma-separated `list` of names, or all,-name,... to leave some out;\nevery processor of a group needs the same list (known: "+strings.Join(stats.Names(stats.All()), ", ")+")")
	}
	if uses("all") {
		fs.IntVar(&o.embeddedPort, "embedded-port", 0, "port of the embedded broker (0: a free one); used only without --brokers")
	}
	if uses("all", "processor") {
		fs.Int64Var(&o.batchSize, "batch-size", processor.DefaultBatchSize, "input offsets per micro-batch: commits happen at batch boundaries")
		fs.DurationVar(&o.snapshotInterval, "snapshot-interval", processor.DefaultSnapshotInterval, "how often open batches are sent to the table (latency)")
	}
	var key string
	if uses("all", "datafeed", "api") {
		fs.StringVar(&o.feed.Images, "images", "images", "`folder` of *.jpg pictures; a picture's id is its base name"+
			map[bool]string{true: " (the api role serves them at /images/ as the dashboard's thumbnails)", false: ""}[name != "datafeed"])
	}
	if uses("all", "datafeed") {
		fs.Float64Var(&o.feed.Rate, "rate", 0, "registrations per second (0: one every 2-4 s, like the original feed)")
		fs.IntVar(&o.feed.Count, "count", 0, "number of registrations to produce (0: until stopped)")
		fs.StringVar(&key, "key", string(datafeed.KeyNone), "record key: none (null, like the original feed) or picture_id")
	}
	if uses("tail") {
		fs.StringVar(&o.tail.Topic, "topic", "", "topic to print (default: the picture topic, with --topic-prefix)")
		fs.BoolVar(&o.tail.FromBeginning, "from-beginning", true, "start at the oldest record; false starts at the newest")
		fs.IntVar(&o.tail.Count, "count", 0, "exit after this many records (0: until stopped)")
	}

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	var errs []error
	var err error
	o.logger, err = newLogger(*logLevel, *logFormat, os.Stderr)
	errs = append(errs, err)
	if *brokers != "" {
		o.cluster.Brokers, err = cluster.ParseBrokers(*brokers)
		errs = append(errs, flagErr("--brokers", err))
	} else if name != "all" {
		errs = append(errs, errors.New("no Kafka cluster given: pass --brokers host:port or set KAFKA_BROKER (only 'picstats all' starts an embedded broker)"))
	}
	o.cluster.Names = cluster.DefaultNames(*prefix)
	o.cluster.Logger = o.logger
	if o.cluster.Partitions < 1 {
		errs = append(errs, fmt.Errorf("--partitions %d: want at least 1", o.cluster.Partitions))
	}
	if o.cluster.Replication < 1 {
		errs = append(errs, fmt.Errorf("--replication %d: want at least 1", o.cluster.Replication))
	}
	for origin := range strings.SplitSeq(origins, ",") {
		if origin = strings.TrimSpace(origin); origin == "" {
			continue
		}
		if u, perr := url.Parse(origin); origin != "*" && (perr != nil || u.Scheme == "" || u.Host == "" || u.Path != "") {
			errs = append(errs, fmt.Errorf("--allowed-origins: %q is not an origin: want scheme://host[:port] (e.g. https://stats.example.com) or *", origin))
			continue
		}
		o.allowedOrigins = append(o.allowedOrigins, origin)
	}
	o.stats, err = stats.Select(statSpec)
	errs = append(errs, flagErr("--stats", err))
	if uses("all", "api") && o.staleAfter <= 0 {
		errs = append(errs, fmt.Errorf("--stale-after %v: want more than 0 (e.g. 3s)", o.staleAfter))
	}
	if uses("all", "api") && o.wedgedAfter <= 0 {
		errs = append(errs, fmt.Errorf("--wedged-after %v: want more than 0 (e.g. 30s)", o.wedgedAfter))
	}
	if uses("all", "processor") && o.batchSize < 1 {
		errs = append(errs, fmt.Errorf("--batch-size %d: want at least 1", o.batchSize))
	}
	if uses("all", "processor") && o.snapshotInterval <= 0 {
		errs = append(errs, fmt.Errorf("--snapshot-interval %v: want more than 0", o.snapshotInterval))
	}
	if uses("all", "api") && o.maxConns < 1 {
		errs = append(errs, fmt.Errorf("--max-conns %d: want at least 1", o.maxConns))
	}
	if o.embeddedPort < 0 || o.embeddedPort > 65535 {
		errs = append(errs, fmt.Errorf("--embedded-port %d: want 0 to 65535", o.embeddedPort))
	}
	if uses("all", "datafeed") {
		o.feed.Key, err = datafeed.ParseKey(key)
		errs = append(errs, flagErr("--key", err))
		if o.feed.Rate < 0 {
			errs = append(errs, fmt.Errorf("--rate %g: want 0 (the original pacing) or a positive rate", o.feed.Rate))
		}
		if o.feed.Count < 0 {
			errs = append(errs, fmt.Errorf("--count %d: want 0 (no limit) or more", o.feed.Count))
		}
		if fi, err := os.Stat(o.feed.Images); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("--images %s: not a folder; run from the repository root or pass the images folder", o.feed.Images))
		}
	}
	if name == "api" { // the thumbnails are a nicety: the API serves the statistics without them
		if fi, err := os.Stat(o.feed.Images); err != nil || !fi.IsDir() {
			o.logger.Warn("--images is not a folder: the dashboard shows no thumbnails until it exists (run from the repository root or pass the images folder)", "images", o.feed.Images)
		}
	}
	if uses("tail") {
		if o.tail.Topic == "" {
			o.tail.Topic = string(o.cluster.Names.Pictures)
		}
		if o.tail.Count < 0 {
			errs = append(errs, fmt.Errorf("--count %d: want 0 (no limit) or more", o.tail.Count))
		}
	}
	return o, errors.Join(errs...)
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
