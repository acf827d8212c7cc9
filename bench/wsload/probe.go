package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// probe polls GET /api/stats/count every probeInterval and keeps, for every
// count value, the send time of the first request that saw it: T0 of push
// latency. The API stores a value before the hub is told, so T0 is late by
// at most one gap between requests, and a push may beat it.
type probe struct {
	mu           sync.Mutex
	first        map[int64]time.Duration // count → send time (since the run's base) of the first GET that saw it
	polls, fails int
	lastErr      string
	gaps         []time.Duration // between consecutive sends: how late T0 may be
}

func (p *probe) run(ctx context.Context, api string, base time.Time) {
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for last := time.Duration(-1); ctx.Err() == nil; <-tick.C {
		sent := time.Since(base)
		n, err := benchkit.GetCount(ctx, hc, api)
		p.mu.Lock()
		if p.polls++; last >= 0 {
			p.gaps = append(p.gaps, sent-last)
		}
		if _, seen := p.first[n]; err == nil && !seen {
			p.first[n] = sent
		} else if err != nil && ctx.Err() == nil {
			p.fails, p.lastErr = p.fails+1, err.Error()
		}
		p.mu.Unlock()
		last = sent
	}
}
