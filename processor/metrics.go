package processor

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/table"
)

// Metrics are the processor's Prometheus metrics (README, "Metrics"). The
// hot path touches only counters resolved once per input partition and
// atomics: a fetched partition costs a few atomic adds, a record nothing.
//
// A processor always has Metrics (New makes unregistered ones): its
// once-a-minute progress line and its probes read them.
type Metrics struct {
	reg prometheus.Registerer // nil: not exported

	records         *prometheus.CounterVec // partition
	rejected        *prometheus.CounterVec // partition, reason
	batchesClosed   *prometheus.CounterVec // partition
	openFlushes     prometheus.Counter
	snapshotSend    prometheus.Histogram
	commitLatency   prometheus.Histogram
	commitFailures  prometheus.Counter
	applied         prometheus.Counter
	ignored         *prometheus.CounterVec // reason
	ignoredBy       map[table.Outcome]prometheus.Counter
	recovery        prometheus.Gauge
	recoveredBehind prometheus.Counter

	mu    sync.Mutex
	parts map[int32]*partMetrics // the input partitions this process owns

	// Totals for the progress line, over every partition ever owned.
	totalRecords, totalRejected, totalBatches atomic.Int64
}

// partMetrics are one input partition's counters and positions.
type partMetrics struct {
	records, batches prometheus.Counter
	rejected         [len(reasonIndex)]prometheus.Counter

	hwm       atomic.Int64 // high watermark at the last fetch
	position  atomic.Int64 // the next offset to read, -1 before the first fetch
	committed atomic.Int64 // the offset committed last by this process, -1 if none
}

// reasonIndex numbers codec's rejection reasons, for per-partition arrays.
var reasonIndex = [...]codec.Reason{codec.ReasonEmpty, codec.ReasonMalformedJSON, codec.ReasonMissingPictureID,
	codec.ReasonInvalidPictureID, codec.ReasonMissingWeight, codec.ReasonInvalidWeight, codec.ReasonWeightOutOfRange}

// latencyBuckets are for sends and commits to Kafka: 1 ms to 10 s.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics returns the processor's metrics, registered on reg unless it
// is nil. Pass them to New with WithMetrics; one Metrics per Processor.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "picstats_input_records_total",
			Help: "Records read from the picture topic by this process's input stage, valid and rejected, by input partition."}, []string{"partition"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "picstats_input_rejected_records_total",
			Help: "Records rejected by the input stage, by input partition and reason."}, []string{"partition", "reason"}),
		batchesClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "picstats_input_batches_closed_total",
			Help: "Micro-batches closed (final snapshots sent) by the input stage, by input partition."}, []string{"partition"}),
		openFlushes: prometheus.NewCounter(prometheus.CounterOpts{Name: "picstats_input_open_snapshot_flushes_total",
			Help: "Snapshots of open batches sent (one per partition flushed, when it has news and its previous one is acknowledged; the statistics over 512 bytes at most every 20 ms, the windowed ones every window snapshot interval)."}),
		snapshotSend: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "picstats_input_snapshot_send_seconds",
			Help: "Time from sending a batch snapshot (every statistic) to Kafka's acknowledgement of the last of them.", Buckets: latencyBuckets}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "picstats_input_commit_seconds",
			Help: "Time a commit of input offsets (batch boundaries) takes.", Buckets: latencyBuckets}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "picstats_input_commit_failures_total",
			Help: "Commits of input offsets that failed (not fatal: a later boundary covers them)."}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "picstats_table_snapshots_applied_total",
			Help: "Snapshots the table stage applied to the group table."}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "picstats_table_snapshots_ignored_total",
			Help: "Snapshots the table stage ignored, by reason: replay (batch already closed, or a repeat) or stale_owner (an owner behind or ahead)."}, []string{"reason"}),
		recovery: prometheus.NewGauge(prometheus.GaugeOpts{Name: "picstats_table_recovery_seconds",
			Help: "How long the table stage took to recover its partitions of the group table at start (0 until it has)."}),
		recoveredBehind: prometheus.NewCounter(prometheus.CounterOpts{Name: "picstats_table_recovered_values_behind_total",
			Help: "Changelog values the table stage, recovering a table partition, found behind the value it kept for some input partition (a late write of an old owner of the table partition), and kept out."}),
		parts: map[int32]*partMetrics{},
	}
	m.ignoredBy = map[table.Outcome]prometheus.Counter{} // resolved once, present at 0
	for _, o := range []table.Outcome{table.IgnoredReplay, table.IgnoredStale} {
		m.ignoredBy[o] = m.ignored.WithLabelValues(o.String())
	}
	if reg != nil {
		reg.MustRegister(m.records, m.rejected, m.batchesClosed, m.openFlushes, m.snapshotSend, m.commitLatency,
			m.commitFailures, m.applied, m.ignored, m.recovery, m.recoveredBehind, lagCollector{m})
	}
	return m
}

// kgoHooks returns kprom's franz-go client metrics for the client named
// subsystem (kafka_input, kafka_snapshots), or nothing if the metrics are not exported.
func (m *Metrics) kgoHooks(subsystem string) []kgo.Opt {
	if m.reg == nil {
		return nil
	}
	return []kgo.Opt{kgo.WithHooks(kprom.NewMetrics("picstats", kprom.Subsystem(subsystem), kprom.Registerer(m.reg)))}
}

// part returns partition p's metrics, creating them at its first use.
func (m *Metrics) part(p int32) *partMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pm := m.parts[p]; pm != nil {
		return pm
	}
	label := strconv.Itoa(int(p))
	pm := &partMetrics{records: m.records.WithLabelValues(label), batches: m.batchesClosed.WithLabelValues(label)}
	for i, r := range reasonIndex {
		pm.rejected[i] = m.rejected.WithLabelValues(label, string(r))
	}
	pm.hwm.Store(-1)
	pm.position.Store(-1)
	pm.committed.Store(-1)
	m.parts[p] = pm
	return pm
}

// assigned starts the positions of newly owned partitions: committed is
// where each starts (negative if unknown), bounds their start and end
// offsets (where known), so that a partition has a lag before its first
// records are fetched: the end minus where reading starts.
func (m *Metrics) assigned(committed map[int32]int64, bounds map[int32][2]int64) {
	for p, off := range committed {
		pm := m.part(p)
		pm.committed.Store(off)
		pm.position.Store(-1)
		pm.hwm.Store(-1)
		if b, ok := bounds[p]; ok {
			from := b[0] // nothing committed: a new owner would start at the start, as this one does
			if off >= 0 {
				from = off
			}
			pm.hwm.Store(b[1])
			pm.position.Store(from)
			pm.committed.Store(from)
		}
	}
}

// revoked forgets the lag of partitions this process no longer owns (their
// counters stay: they count what this process read).
func (m *Metrics) revoked(parts []int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range parts {
		if pm := m.parts[p]; pm != nil {
			pm.position.Store(-1)
			pm.committed.Store(-1)
			pm.hwm.Store(-1)
		}
	}
}

// fetched counts one fetched partition's records: n in all, rejected[i] of
// reason reasonIndex[i], read up to next (the offset after the last) with
// the partition at high watermark hwm.
func (pm *partMetrics) fetched(m *Metrics, n int, rejected *[len(reasonIndex)]int, next, hwm int64) {
	pm.records.Add(float64(n))
	m.totalRecords.Add(int64(n))
	for i, c := range rejected {
		if c > 0 {
			pm.rejected[i].Add(float64(c))
			m.totalRejected.Add(int64(c))
		}
	}
	pm.hwm.Store(hwm)
	if next >= 0 {
		pm.position.Store(next)
	}
}

func (pm *partMetrics) batchClosed(m *Metrics) {
	pm.batches.Inc()
	m.totalBatches.Add(1)
}

// reasonSlot returns the index of r in reasonIndex (the last for an
// unknown reason, which codec does not return).
func reasonSlot(r codec.Reason) int {
	for i, x := range reasonIndex {
		if x == r {
			return i
		}
	}
	return len(reasonIndex) - 1
}

// committedOffsets records a successful commit.
func (m *Metrics) committedOffsets(offsets map[int32]int64, took time.Duration, err error) {
	m.commitLatency.Observe(took.Seconds())
	if err != nil {
		m.commitFailures.Inc()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, off := range offsets {
		if pm := m.parts[p]; pm != nil {
			pm.committed.Store(off)
		}
	}
}

// lags returns, per owned partition with a known high watermark, the
// consumer lag (high watermark − position) and the committed lag (high
// watermark − committed offset, -1 if nothing is committed).
func (m *Metrics) lags() map[int32][2]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32][2]int64{}
	for p, pm := range m.parts {
		hwm, pos, com := pm.hwm.Load(), pm.position.Load(), pm.committed.Load()
		if hwm < 0 || pos < 0 {
			continue // not owned, or not fetched yet
		}
		committed := int64(-1)
		if com >= 0 {
			committed = max(0, hwm-com)
		}
		out[p] = [2]int64{max(0, hwm-pos), committed}
	}
	return out
}

// lagCollector exports the lags of the owned partitions at scrape time, so
// that a revoked partition's series disappears.
type lagCollector struct{ m *Metrics }

var (
	lagDesc = prometheus.NewDesc("picstats_input_lag_records",
		"Consumer lag of an input partition this process owns: its high watermark minus the next offset to read, both from the last fetch.", []string{"partition"}, nil)
	committedLagDesc = prometheus.NewDesc("picstats_input_committed_lag_records",
		"An owned input partition's high watermark minus the offset this process committed last (commits happen at batch boundaries, so up to --batch-size more than the lag).", []string{"partition"}, nil)
)

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc; ch <- committedLagDesc }

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	for p, l := range c.m.lags() {
		label := strconv.Itoa(int(p))
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l[0]), label)
		if l[1] >= 0 {
			ch <- prometheus.MustNewConstMetric(committedLagDesc, prometheus.GaugeValue, float64(l[1]), label)
		}
	}
}
