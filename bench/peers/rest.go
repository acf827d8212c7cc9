package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/bench/internal/benchkit"
)

// rest compares GET /api/stats of `picstats api` with a bare net/http
// handler that serves the same bytes with the same headers, each in its
// own process, under the same load: --rest-conns keep-alive connections
// from this process, as fast as they can, for --rest-duration. The API
// serves every statistic over a table built from a feed-like backlog (100
// pictures), as a user's dashboard would ask for it.
func (e *env) rest(ctx context.Context) error {
	api, apiURL, body, err := e.restAPI(ctx)
	if api != nil {
		defer api.Stop()
	}
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(e.tmp, "stats.json")
	ports, err := benchkit.FreePorts(1)
	if err == nil {
		err = os.WriteFile(bodyFile, body, 0o644)
	}
	if err != nil {
		return err
	}
	bareAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	bareURL := "http://" + bareAddr + "/api/stats"
	bare, err := benchkit.Start(ctx, e.log("rest-bare"), nil, e.self, "--mode", "bare-rest", bareAddr, bodyFile)
	if err != nil {
		return err
	}
	defer bare.Stop()
	hc := &http.Client{Timeout: time.Second}
	if err := benchkit.Poll(ctx, 30*time.Second, 20*time.Millisecond, func() error { _, err := benchkit.Get(ctx, hc, bareURL); return err }); err != nil {
		return err
	}
	var served map[string]json.RawMessage
	if err := json.Unmarshal(body, &served); err != nil {
		return fmt.Errorf("/api/stats: %w", err)
	}
	fmt.Printf("== rest: GET /api/stats (%d statistics, %d bytes), %d connections, %v per run ==\n", len(served), len(body), e.o.restConns, e.o.restDuration)
	var apiRates, bareRates, ratios []float64
	for i := range e.o.runs {
		a, acpu, aerr := e.load(ctx, apiURL, body, api)
		b, bcpu, berr := e.load(ctx, bareURL, body, bare)
		if err := errors.Join(aerr, berr); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Printf("  run %d: picstats api %.0f req/s (server %.2f cores); bare handler %.0f req/s (server %.2f cores); ratio %.2f\n", i+1, a, acpu, b, bcpu, a/b)
		apiRates, bareRates, ratios = append(apiRates, a), append(bareRates, b), append(ratios, a/b)
	}
	fmt.Printf("rest, medians over %d runs: picstats api %s req/s, bare handler %s req/s, ratio %s\n\n",
		e.o.runs, f(benchkit.Median(apiRates), 0), f(benchkit.Median(bareRates), 0), f(benchkit.Median(ratios), 2))
	return nil
}

// restAPI starts `picstats api` serving the final table of 100,000
// feed-like records and returns it, the URL of /api/stats and what that
// serves.
func (e *env) restAPI(ctx context.Context) (*benchkit.Child, string, []byte, error) {
	const prefix, records = "bench.rest.", 100_000
	if err := e.freshInput(ctx, prefix); err != nil {
		return nil, "", nil, err
	}
	if err := benchkit.Produce(ctx, []kgo.Opt{kgo.SeedBrokers(e.broker), kgo.DefaultProduceTopic(prefix + "picture")}, records, registration); err != nil {
		return nil, "", nil, err
	}
	proc, err := benchkit.Start(ctx, e.log("rest-processor"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, "all", partitions)...)
	if err != nil {
		return nil, "", nil, err
	}
	defer proc.Stop() // the table is final once the API serves the count: only the API serves from then on
	api, base, err := e.startAPI(ctx, "rest-api", prefix, "all")
	if err != nil {
		return nil, "", nil, err
	}
	hc := &http.Client{Timeout: time.Second}
	if note := api.WaitReady(ctx, "api", func() bool { return checkCount(ctx, hc, base, records) == nil }); note != "" {
		return api, "", nil, fmt.Errorf("the API did not serve count %d: %s", records, note)
	}
	proc.Stop()
	body, err := benchkit.Get(ctx, hc, base+"/api/stats")
	return api, base + "/api/stats", body, err
}

// load sends GETs over --rest-conns keep-alive connections, after 1 s of
// warm-up, for --rest-duration, checks that every answer is 200 with body
// want, and returns requests/s and the server's CPU cores meanwhile.
func (e *env) load(ctx context.Context, url string, want []byte, server *benchkit.Child) (rate, cores float64, err error) {
	conns := e.o.restConns
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	run := func(until time.Time, count bool) {
		var wg sync.WaitGroup
		for range conns {
			wg.Go(func() {
				for time.Now().Before(until) && ctx.Err() == nil {
					b, err := benchkit.Get(ctx, hc, url)
					if err == nil && !bytes.Equal(b, want) {
						err = fmt.Errorf("%s answered other bytes (%d, want %d)", url, len(b), len(want))
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					if count {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	run(time.Now().Add(time.Second), false) // warm up: connections, caches
	cpu0, t0 := server.CPU(), time.Now()
	run(t0.Add(e.o.restDuration), true)
	el := time.Since(t0).Seconds()
	if p := firstErr.Load(); p != nil {
		err = *p
	}
	return float64(n.Load()) / el, (server.CPU() - cpu0) / el, err
}

// bareRESTChild serves one file's bytes as picstats' API serves JSON, with
// nothing else: no router, no table, no encoding.
func bareRESTChild(addr, file string) error {
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	return (&http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}).ListenAndServe()
}

// registration is the i-th feed-like registration: 100 pictures, weights
// from 20 to 5000 g, keyed by picture id.
func registration(i int) *kgo.Record {
	id := fmt.Sprintf("picture-%02d", i%100)
	return &kgo.Record{Key: []byte(id), Value: fmt.Appendf(nil, `{"picture_id":%q,"weight":%d}`, id, 20+(i*7919)%4981)}
}
