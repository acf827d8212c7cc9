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
// handler that serves the same bytes with the same headers, each in its own
// process, under the same load: --rest-conns keep-alive connections from
// this process, as fast as they can, for --rest-duration. The API serves
// every statistic over a table built from a feed-like backlog (100
// pictures), as a user's dashboard would ask for it.
func (e *env) rest(ctx context.Context) error {
	api, body, err := e.restAPI(ctx)
	if api.Child != nil {
		defer api.Stop()
	}
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(e.tmp, "stats.json")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		return err
	}
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return err
	}
	bareAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	bareURL := "http://" + bareAddr + "/api/stats"
	bare, err := benchkit.Start(ctx, e.log("rest-bare"), nil, e.self, "--mode", "bare-rest", "--addr", bareAddr, "--body", bodyFile)
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
		a := load(ctx, api.url, body, e.o.restConns, e.o.restDuration, api.Child)
		b := load(ctx, bareURL, body, e.o.restConns, e.o.restDuration, bare)
		fmt.Printf("  run %d: picstats api %s; bare handler %s; ratio %.2f\n", i+1, a, b, a.rate/b.rate)
		if a.err != nil || b.err != nil {
			return errors.Join(a.err, b.err)
		}
		apiRates, bareRates, ratios = append(apiRates, a.rate), append(bareRates, b.rate), append(ratios, a.rate/b.rate)
	}
	fmt.Printf("rest, medians over %d runs: picstats api %s req/s, bare handler %s req/s, ratio %s\n\n",
		e.o.runs, benchkit.F(benchkit.Median(apiRates), 0), benchkit.F(benchkit.Median(bareRates), 0), benchkit.F(benchkit.Median(ratios), 2))
	return nil
}

// restAPI is `picstats api` serving a final table of 100,000 feed-like
// records: its child, the URL of /api/stats, and what that serves.
type restAPI struct {
	*benchkit.Child
	url string
}

func (e *env) restAPI(ctx context.Context) (restAPI, []byte, error) {
	const prefix, records = "bench.rest.", 100_000
	if err := deletePrefixed(ctx, e.adm, prefix, picstatsGroups(prefix)...); err != nil {
		return restAPI{}, nil, err
	}
	if err := e.feed(ctx, prefix+"picture", records); err != nil {
		return restAPI{}, nil, err
	}
	proc, err := benchkit.Start(ctx, e.log("rest-processor"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, "all")...)
	if err != nil {
		return restAPI{}, nil, err
	}
	defer proc.Stop() // the table is final once the API serves the count: only the API serves from then on
	c, base, err := e.startAPI(ctx, "rest-api", prefix, "all")
	if err != nil {
		return restAPI{}, nil, err
	}
	api := restAPI{c, base + "/api/stats"}
	hc := &http.Client{Timeout: time.Second}
	if note := api.WaitReady(ctx, "api", func() bool { return checkCount(ctx, hc, base, records) == nil }); note != "" {
		return api, nil, fmt.Errorf("the API did not serve count %d: %s", records, note)
	}
	proc.Stop()
	body, err := benchkit.Get(ctx, hc, api.url)
	return api, body, err
}

type loadResult struct {
	rate, serverCPU float64 // requests/s; the server's CPU cores during the run
	err             error
}

func (l loadResult) String() string {
	if l.err != nil {
		return "FAILED: " + l.err.Error()
	}
	return fmt.Sprintf("%.0f req/s (server %.2f cores)", l.rate, l.serverCPU)
}

// load sends GETs over conns keep-alive connections for d and checks that
// every answer is 200 with the expected body.
func load(ctx context.Context, url string, want []byte, conns int, d time.Duration, server *benchkit.Child) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	run := func(until time.Time, count bool) {
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
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
			}()
		}
		wg.Wait()
	}
	run(time.Now().Add(time.Second), false) // warm up: connections, caches, JIT of nothing
	cpu0, t0 := server.CPU(), time.Now()
	run(t0.Add(d), true)
	el := time.Since(t0).Seconds()
	r := loadResult{rate: float64(n.Load()) / el, serverCPU: (server.CPU() - cpu0) / el}
	if p := firstErr.Load(); p != nil {
		r.err = *p
	}
	return r
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

// feed produces n feed-like registrations (100 pictures, weights 20 to
// 5000 g) to topic, created with the benchmark's partitions.
func (e *env) feed(ctx context.Context, topic string, n int) error {
	if _, err := e.adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		return fmt.Errorf("create %s: %w", topic, err)
	}
	return benchkit.Produce(ctx, []kgo.Opt{kgo.SeedBrokers(e.broker), kgo.DefaultProduceTopic(topic)}, n, registration)
}

// registration is the i-th feed-like registration: 100 pictures, weights
// from 20 to 5000 g, keyed by picture id.
func registration(i int) *kgo.Record {
	id := fmt.Sprintf("picture-%02d", i%100)
	v := fmt.Sprintf(`{"picture_id":%q,"weight":%d}`, id, 20+(i*7919)%4981)
	return &kgo.Record{Key: []byte(id), Value: []byte(v)}
}
