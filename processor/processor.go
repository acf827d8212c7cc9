// Package processor turns registrations on the picture topic into exact
// statistics, in two stages.
//
// The input stage (input.go, batcher.go) reads the picture topic with a
// franz-go consumer group, decodes each record and pre-aggregates the
// partitions it owns into offset-aligned micro-batches, sending snapshots of
// them, keyed by statistic name, to the snapshots topic. It forwards
// rejected records, with their reason, to picture.rejected, and commits
// input offsets only at batch boundaries, once the batch's final snapshots
// and rejected records are stored.
//
// The table stage is a goka processor (group "picstats") that folds the
// snapshots into the group table — one value per statistic, backed by a
// Kafka changelog — by a replace-then-merge rule (package table) that ignores
// repeated and stale snapshots, and republishes each changed statistic on
// the stats topic. Together they keep results exact through crashes,
// restarts and rebalances without Kafka transactions.
//
// Records on the picture topic may have any key (or none) and land on any
// partition: nothing here depends on input keys.
package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// Processor aggregates registrations into the enabled statistics.
type Processor struct {
	names    cluster.Names
	kinds    []stats.Kind
	byName   map[string]stats.Kind
	logger   *slog.Logger
	batch    int64
	interval time.Duration
	fast     int           // kinds[:fast] are the plain statistics, the rest windowed (WithWindows)
	windowed time.Duration // how often open batches of windowed statistics are snapshotted
	batcher  *batcher
	decoders decoders
	decoded  table.Decoded // the table stage's decoded closed aggregates
	tables   tableStores   // the table stage's copies of the group table, kept across its sessions
	hook     InputHook
	metrics  *Metrics
	health   health

	missingTopicWait time.Duration // how long the input topic may be missing; tests shorten it
}

// Option configures a Processor.
type Option func(*Processor)

// WithBatchSize sets N, the number of input offsets per batch. A larger N
// commits less often; after a crash at most N records per partition are
// read again (and counted once).
func WithBatchSize(n int64) Option { return func(p *Processor) { p.batch = n } }

// WithSnapshotInterval sets the least time between two snapshots of a
// partition's open batch. A batch with news is snapshotted as soon as its
// previous snapshot is acknowledged and this much older (batcher.flush):
// the interval bounds the table's write rate, and adds to the latency
// from a registration to the API only while records arrive faster.
func WithSnapshotInterval(d time.Duration) Option { return func(p *Processor) { p.interval = d } }

// WithWindows adds windowed statistics (stats.WindowedKinds) to those New
// was given. Their open batches are snapshotted every interval rather than
// at every snapshot interval: a windowed value holds every window kept, and
// the table stage rewrites the whole value at each snapshot it applies.
// Final snapshots carry them like every statistic.
func WithWindows(kinds []stats.Kind, interval time.Duration) Option {
	return func(p *Processor) { p.kinds, p.windowed = append(p.kinds, kinds...), interval }
}

// DefaultWindowInterval is how often open batches of windowed statistics
// are snapshotted by default.
const DefaultWindowInterval = time.Second

// InputHook is told of every fetch the input stage has handled: n records
// (n > 0), fetched at polled; it is called after they were added to their
// batches, on the input stage's goroutine, so it must be quick. Benchmarks
// time drains with it.
type InputHook func(n int, polled time.Time)

// WithInputHook sets the hook told of every handled fetch.
func WithInputHook(h InputHook) Option { return func(p *Processor) { p.hook = h } }

// WithMetrics sets the metrics the processor counts into (default:
// NewMetrics(nil), counted but not exported). The franz-go clients of the
// input stage and the snapshot producer export theirs (kprom) on the same
// registerer.
func WithMetrics(m *Metrics) Option { return func(p *Processor) { p.metrics = m } }

// Defaults of the options.
const (
	DefaultBatchSize        = 10_000
	DefaultSnapshotInterval = 5 * time.Millisecond
)

// New returns a processor for the given statistics.
func New(names cluster.Names, kinds []stats.Kind, logger *slog.Logger, opts ...Option) (*Processor, error) {
	if len(kinds) == 0 {
		return nil, errors.New("processor: no statistics enabled")
	}
	p := &Processor{names: names, kinds: slices.Clone(kinds), fast: len(kinds), byName: map[string]stats.Kind{}, logger: logger,
		batch: DefaultBatchSize, interval: DefaultSnapshotInterval, windowed: DefaultWindowInterval, missingTopicWait: DefaultMissingTopicWait}
	for _, o := range opts {
		o(p)
	}
	if p.windowed < p.interval {
		return nil, fmt.Errorf("processor: window snapshot interval %v: want at least the snapshot interval %v", p.windowed, p.interval)
	}
	if p.metrics == nil {
		p.metrics = NewMetrics(nil)
	}
	if p.batch < 1 {
		return nil, fmt.Errorf("processor: batch size %d: want at least 1", p.batch)
	}
	if p.interval <= 0 {
		return nil, fmt.Errorf("processor: snapshot interval %v: want more than 0", p.interval)
	}
	for _, k := range p.kinds {
		p.byName[k.Name] = k
	}
	return p, nil
}

// Graph is the table stage's goka group graph: Input(snapshots, keyed by
// statistic name) → Persist (group table) → Output(stats).
func (p *Processor) Graph() *goka.GroupGraph {
	return goka.DefineGroup(p.names.Group,
		goka.Input(p.names.Snapshots(), new(gokacodec.Bytes), p.apply),
		goka.Persist(new(gokacodec.Bytes)),
		goka.Output(p.names.Stats, new(gokacodec.Bytes)),
	)
}

// Run runs both stages until ctx is cancelled or one fails. A snapshot or
// rejected record that Kafka does not store is a failure: nothing is
// committed past it, and the process should exit so that another instance
// takes over. So is an error reading the input topic that waiting will not
// heal: no permission to read it, or a topic that no longer exists (for
// DefaultMissingTopicWait).
func (p *Processor) Run(ctx context.Context, c cluster.Config) error {
	p.health.started.Store(time.Now().UnixNano())
	defer p.health.stopped.Store(true)
	producer, err := newSnapshotProducer(c, p.metrics.kgoHooks("kafka_snapshots")...)
	if err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var failOnce sync.Once
	fail := func(err error) {
		failOnce.Do(func() {
			p.logger.Error("processor failing", logAttrs(err)...)
			cancel(fmt.Errorf("%w: %w", errBatcherFailed, err))
		})
	}
	groupBuilder := func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		cg, err := c.ConsumerGroupBuilder()(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		return &sessionLoop{ConsumerGroup: cg, logger: p.logger}, nil
	}
	opts := append(c.ProcessorOptions(), goka.WithConsumerGroupBuilder(groupBuilder), goka.WithUpdateCallback(p.recoverValue),
		goka.WithStorageBuilder(p.tables.builder))
	table, err := goka.NewProcessor(c.Brokers, p.Graph(), opts...)
	if err != nil {
		producer.Close()
		return fmt.Errorf("processor: %w", err)
	}

	start := time.Now()
	go func() {
		// Operators (and bench/peers' recovery figure) want to know when
		// the table stage has recovered its partitions of the table.
		if table.WaitForReadyContext(ctx) == nil && table.Recovered() {
			took := time.Since(start)
			p.metrics.recovery.Set(took.Seconds())
			p.health.recovered.Store(true)
			p.logger.Info("processor ready: table recovered", "after", took.Round(time.Millisecond).String())
		}
	}()
	go p.logProgress(ctx, progressInterval)
	var wg sync.WaitGroup
	var tableErr, inputErr error
	wg.Add(2)
	// A stage that returns once ctx is done — the caller asked to stop, or
	// the other stage stopped first — stopped because it was told to, and
	// what it returns is no news: goka, stopped while it waits for its
	// tables at start, says "context closed while waiting for startup
	// tables", which made a Ctrl-C right after start exit with status 1.
	// A static member leaves each group as soon as its stage has stopped
	// (leaveGroup).
	stage := func(name, group string, run func() error) error {
		err := run()
		if ctx.Err() != nil {
			err = nil
		}
		cancel(nil)
		p.logger.Debug("stage stopped", "stage", name) // its time stamp, against when the signal was sent, says how long stopping took
		if id := c.Membership.InstanceID; id != "" {
			p.leaveGroup(c, group, id)
		}
		return err
	}
	go func() {
		defer wg.Done()
		tableErr = stage("table", string(c.Names.Group), func() error { return table.Run(ctx) })
	}()
	go func() {
		defer wg.Done()
		inputErr = stage("input", c.Names.InputGroup(), func() error { return p.runInput(ctx, c, producer, fail) })
	}()
	wg.Wait()

	if cause := context.Cause(ctx); errors.Is(cause, errBatcherFailed) {
		return cause
	}
	if err := errors.Join(inputErr, tableErr); err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	return nil
}

// leaveGroup takes the static member id out of group. Closing a client
// that has a group.instance.id does not leave its group, so that a
// processor restarted with the same id gets its partitions back without a
// rebalance; one that stops (SIGTERM, or a failure) hands them over now
// rather than after the session timeout. A SIGKILLed one does not get
// here, and its restart rejoins without a rebalance.
func (p *Processor) leaveGroup(c cluster.Config, group, id string) {
	cl, err := c.Client()
	if err == nil {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var resp kadm.LeaveGroupResponses
		resp, err = kadm.NewClient(cl).LeaveGroup(ctx, kadm.LeaveGroup(group).InstanceIDs(id).Reason("picstats processor stopping"))
		if err == nil {
			err = resp.Error()
		}
	}
	if err != nil {
		p.logger.Warn("leaving a consumer group", "group", group, "instance_id", id, "err", err)
	}
}

// recoverValue is the table stage's update callback (goka.WithUpdateCallback),
// called for every changelog record while a table partition is recovered: it
// keeps the join of the values written (table.Join), so that a late write of
// an old owner of the partition never takes a statistic back. A value it
// cannot read is kept as goka would; apply fails on it when it is used.
func (p *Processor) recoverValue(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	stored, err := st.Get(key)
	if err != nil {
		return err
	}
	keep, behind, err := table.Join(stored, value)
	if err != nil {
		p.logger.Error("table value not joined with the one recovered", "stat", key, "err", err)
	}
	if behind {
		p.metrics.recoveredBehind.Inc()
	}
	if err := goka.DefaultUpdate(ctx, st, key, keep); err != nil {
		return err
	}
	if k := p.tables.of(string(ctx.Topic()), ctx.Partition()); k != nil {
		k.recovering(ctx.Offset())
	}
	return nil
}

func bytesOf(msg any) []byte {
	b, _ := msg.([]byte) // a null value arrives as nil
	return b
}

// Rejection is the value forwarded to picture.rejected. Its key is
// "<topic>/<partition>/<offset>" of the original record: after a crash a
// record may be forwarded again, and the key lets a reader drop repeats.
type Rejection struct {
	Reason    codec.Reason `json:"reason"`
	Error     string       `json:"error"`
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Key       string       `json:"key,omitempty"`
	Value     string       `json:"value"`                  // the original value, if it is UTF-8
	ValueB64  []byte       `json:"value_base64,omitempty"` // else the original bytes
}

// RejectionKey is the key of a rejected record on picture.rejected.
func RejectionKey(topic string, partition int32, offset int64) string {
	b := make([]byte, 0, len(topic)+24)
	b = append(append(b, topic...), '/')
	b = append(strconv.AppendInt(b, int64(partition), 10), '/')
	return string(strconv.AppendInt(b, offset, 10))
}

// apply folds a snapshot from the snapshots topic into the statistic's table
// value and, if that changed it, republishes the statistic.
//
// Every ctx.Fail is followed by a return: goka's Fail panics (stopping the
// callback) only while the processor runs; once it is shutting down, Fail
// records the error and returns, and going on would store a value built from
// a zero snapshot or a half-read table value. The result is computed before
// the value is stored, so a failure writes nothing.
func (p *Processor) apply(ctx goka.Context, msg any) {
	name := ctx.Key()
	k, ok := p.byName[name]
	if !ok {
		// Sent by an instance with other statistics enabled; this one keeps
		// no table value for it.
		p.logger.Warn("dropping a snapshot of a statistic that is not enabled here", "stat", name)
		return
	}
	busy := p.health.applyStarted(ctx.Partition())
	defer busy.Store(0)
	var snap table.Snapshot
	if err := snap.UnmarshalBinary(bytesOf(msg)); err != nil {
		ctx.Fail(fmt.Errorf("snapshot of %s: %w", name, err))
		return
	}
	var v table.Value
	if err := v.UnmarshalBinary(bytesOf(ctx.Value())); err != nil {
		ctx.Fail(fmt.Errorf("table value of %s: %w", name, err)) // stop loudly rather than misread state
		return
	}
	outcome, err := p.decoded.Apply(&v, k, snap)
	if err != nil {
		ctx.Fail(fmt.Errorf("apply a snapshot of %s: %w", name, err))
		return
	}
	if outcome != table.Applied {
		p.metrics.ignoredBy[outcome].Inc()
		return
	}
	p.metrics.applied.Inc()
	total, err := p.decoded.Stat(&v, k)
	if err != nil {
		ctx.Fail(fmt.Errorf("table value of %s: %w", name, err))
		return
	}
	results, err := p.results(k, total, snap)
	if err != nil {
		ctx.Fail(fmt.Errorf("result of %s: %w", name, err))
		return
	}
	b, err := v.MarshalBinary()
	if err != nil {
		ctx.Fail(fmt.Errorf("table value of %s: %w", name, err))
		return
	}
	ctx.SetValue(b)
	for _, r := range results {
		ctx.Emit(p.names.Stats, r.key, r.json)
	}
}

type keyedResult struct {
	key  string
	json []byte
}

// results are what the stats topic gets for statistic k after snap made
// its value total: the result, keyed by the statistic's name; for a
// windowed statistic, the result of each window snap touched, keyed
// name@start (RFC 3339, UTC), rather than every window kept.
func (p *Processor) results(k stats.Kind, total stats.Stat, snap table.Snapshot) ([]keyedResult, error) {
	w, windowed := total.(*stats.Windows)
	if !windowed {
		b, err := json.Marshal(total.Result())
		return []keyedResult{{k.Name, b}}, err
	}
	batch, err := k.Decode(snap.Agg)
	if err != nil {
		return nil, err
	}
	var out []keyedResult
	for _, start := range batch.(*stats.Windows).Starts() {
		r, kept := w.At(start)
		if !kept {
			continue // evicted by a newer record
		}
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, keyedResult{k.Name + "@" + start.Format(time.RFC3339), b})
	}
	return out, nil
}
