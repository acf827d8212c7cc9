package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

type probe struct {
	base   time.Time
	mu     sync.Mutex
	first  map[int64]time.Duration // count value → send time of the first GET that saw it
	polls  int
	errors int
	lastEr string
	rtts   []time.Duration // per GET
	gaps   []time.Duration // between consecutive sends: how late T0 may be

	lastSent time.Duration
}

func newProbe(base time.Time) *probe { return &probe{base: base, first: map[int64]time.Duration{}} }

func (p *probe) run(ctx context.Context, api string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		sent := time.Since(p.base)
		n, err := benchkit.GetCount(ctx, hc, api)
		rtt := time.Since(p.base) - sent
		p.mu.Lock()
		if p.polls > 0 {
			p.gaps = append(p.gaps, sent-p.lastSent)
		}
		p.lastSent = sent
		p.rtts = append(p.rtts, rtt)
		p.polls++
		if err != nil {
			if ctx.Err() == nil {
				p.errors++
				p.lastEr = err.Error()
			}
		} else if _, ok := p.first[n]; !ok {
			p.first[n] = sent
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitReady waits until baseURL/readyz answers 200, or the pipeline exits.
func waitReady(ctx context.Context, hc *http.Client, baseURL string, exited <-chan struct{}, timeout time.Duration) error {
	return benchkit.Poll(ctx, timeout, 100*time.Millisecond, func() error {
		select {
		case <-exited:
			return errors.New("the pipeline exited before it was ready")
		default:
		}
		_, err := benchkit.Get(ctx, hc, baseURL+"/readyz")
		return err
	})
}

func waitCount(ctx context.Context, hc *http.Client, baseURL string, atLeast int64, timeout time.Duration) error {
	return benchkit.Poll(ctx, timeout, 50*time.Millisecond, func() error {
		n, err := benchkit.GetCount(ctx, hc, baseURL)
		if err == nil && n < atLeast {
			err = fmt.Errorf("count %d, want at least %d", n, atLeast)
		}
		return err
	})
}

// waitQuiet polls /api/stats until it stays the same for quietFor and
// returns it, compacted per statistic.
func waitQuiet(ctx context.Context, hc *http.Client, baseURL string, timeout time.Duration) (map[string][]byte, error) {
	var last []byte
	var since time.Time
	err := benchkit.Poll(ctx, timeout, 100*time.Millisecond, func() error {
		b, err := benchkit.Get(ctx, hc, baseURL+"/api/stats")
		if err != nil {
			return err
		}
		if !bytes.Equal(b, last) {
			last, since = b, time.Now()
		}
		if time.Since(since) < quietFor {
			return errors.New("/api/stats still changing: the feed is running (stop it, or pass --no-check)")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(last, &raw); err != nil {
		return nil, fmt.Errorf("/api/stats: %w", err)
	}
	rest := make(map[string][]byte, len(raw))
	for name, v := range raw {
		c, err := compact(v)
		if err != nil {
			return nil, fmt.Errorf("/api/stats %s: %w", name, err)
		}
		rest[name] = c
	}
	return rest, nil
}
