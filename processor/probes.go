package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// health is what the probes read: the stages report into atomics, and a
// probe never waits for them.
type health struct {
	started   atomic.Int64 // Run's start (unix ns), 0 before
	stopped   atomic.Bool  // Run has returned
	recovered atomic.Bool  // the table stage has recovered its partitions of the table
	assigned  atomic.Bool  // the input stage is in its group with an assignment (maybe empty)

	handling  atomic.Int64 // when the input stage began handling the current fetch (unix ns), 0 between fetches
	flushBeat atomic.Int64 // the flusher's last tick (unix ns), 0 while it does not run

	// applying holds, per snapshots partition, when its running table-stage
	// callback began (unix ns), 0 while none runs; it only grows, and the
	// callbacks read it without a lock.
	applying atomic.Pointer[[]*atomic.Int64]
	grow     sync.Mutex
}

// applyStarted marks the start of a table-stage callback of partition p;
// applyDone its end.
func (h *health) applyStarted(p int32) *atomic.Int64 {
	if ps := h.applying.Load(); ps != nil && int(p) < len(*ps) {
		(*ps)[p].Store(time.Now().UnixNano())
		return (*ps)[p]
	}
	h.grow.Lock()
	var ps []*atomic.Int64
	if old := h.applying.Load(); old != nil {
		ps = append(ps, *old...)
	}
	for len(ps) <= int(p) {
		ps = append(ps, new(atomic.Int64))
	}
	h.applying.Store(&ps)
	h.grow.Unlock()
	ps[p].Store(time.Now().UnixNano())
	return ps[p]
}

// oldestApply returns when the longest-running table-stage callback began
// (unix ns), 0 if none runs.
func (h *health) oldestApply() int64 {
	var oldest int64
	if ps := h.applying.Load(); ps != nil {
		for _, t := range *ps {
			if v := t.Load(); v != 0 && (oldest == 0 || v < oldest) {
				oldest = v
			}
		}
	}
	return oldest
}

// DefaultWedgedAfter is how long a step of the processor may be stuck
// before /healthz fails: longer than the snapshot producer's delivery
// timeout (a minute), after which a processor that cannot store its
// snapshots exits by itself, so that only a processor that is stuck for
// another reason (a deadlock, a callback that never returns) fails it.
const DefaultWedgedAfter = 2 * time.Minute

// Ready reports whether the processor does its work: its table stage has
// recovered its partitions of the group table and its input stage is in
// its consumer group with an assignment. Otherwise reason says what it
// waits for.
func (p *Processor) Ready() (ready bool, reason string) {
	h := &p.health
	switch {
	case h.started.Load() == 0:
		return false, "the processor has not started: waiting for the cluster and the topics"
	case h.stopped.Load():
		return false, "the processor has stopped"
	case !h.recovered.Load():
		return false, "the table stage is recovering the group table"
	case !h.assigned.Load():
		return false, "the input stage is joining its consumer group"
	}
	return true, ""
}

// Wedged returns why the processor is stuck, or "" if it is not: handling
// one fetch, a table-stage callback, or the snapshot flusher's tick stuck
// for longer than after.
func (p *Processor) Wedged(now time.Time, after time.Duration) string {
	h := &p.health
	since := func(ns int64) time.Duration { return now.Sub(time.Unix(0, ns)) }
	if t := h.handling.Load(); t != 0 && since(t) > after {
		return fmt.Sprintf("handling one fetch of the input has taken %v", since(t).Round(time.Second))
	}
	if t := h.oldestApply(); t != 0 && since(t) > after {
		return fmt.Sprintf("a table-stage callback has run for %v", since(t).Round(time.Second))
	}
	if t := h.flushBeat.Load(); t != 0 && since(t) > after+p.interval {
		return fmt.Sprintf("the snapshot flusher has not ticked for %v", since(t).Round(time.Second))
	}
	return ""
}

// Healthz is the processor's liveness probe: 200 {"status":"ok"}, or 503
// {"status":"wedged","reason":...} when a step has been stuck for
// DefaultWedgedAfter. Waiting for the cluster is not being wedged.
func (p *Processor) Healthz(w http.ResponseWriter, _ *http.Request) {
	if why := p.Wedged(time.Now(), DefaultWedgedAfter); why != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "wedged", "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readyz is the processor's readiness probe: 200 {"status":"ready"} once
// Ready, else 503 {"status":"not_ready","reason":...}.
func (p *Processor) Readyz(w http.ResponseWriter, _ *http.Request) {
	if ok, why := p.Ready(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// progressInterval is how often the processor logs its progress.
const progressInterval = time.Minute

// logProgress logs one INFO line per interval with the input stage's
// throughput and lag, until ctx ends.
func (p *Processor) logProgress(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	m := p.metrics
	records, rejected, batches := m.totalRecords.Load(), m.totalRejected.Load(), m.totalBatches.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r, j, b := m.totalRecords.Load(), m.totalRejected.Load(), m.totalBatches.Load()
		var lag, committedLag int64
		lags := m.lags()
		for _, l := range lags {
			lag += l[0]
			committedLag += max(0, l[1])
		}
		ready, _ := p.Ready()
		p.logger.Info("processor progress",
			"records", r-records, "records_per_second", float64(r-records)/interval.Seconds(),
			"rejected", j-rejected, "batches_closed", b-batches,
			"partitions", len(lags), "lag", lag, "committed_lag", committedLag, "ready", ready)
		records, rejected, batches = r, j, b
	}
}
