package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// rest compares GET /api/stats of `picstats api` with a bare net/http
// handler that serves the same bytes with the same headers, each in its own
// process, under the same load: --rest-conns keep-alive connections from
// this process, as fast as they can, for --rest-duration. The API serves
// every statistic over a table built from a feed-like backlog (100
// pictures), as a user's dashboard would ask for it.
func (e *env) rest(ctx context.Context) error {
	const prefix, records = "bench.rest.", 100_000
	if err := deletePrefixed(ctx, e.adm, prefix, picstatsGroups(prefix)...); err != nil {
		return err
	}
	if err := e.feed(ctx, prefix+"picture", records); err != nil {
		return err
	}
	proc, err := startChild(ctx, e.log("rest-processor"), nil, e.picstats, picstatsArgs("processor", e.broker, prefix, "all")...)
	if err != nil {
		return err
	}
	defer proc.stop()
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	apiAddr, bareAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	api, err := startChild(ctx, e.log("rest-api"), nil, e.picstats, picstatsArgs("api", e.broker, prefix, "all", "--addr", apiAddr)...)
	if err != nil {
		return err
	}
	defer api.stop()
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for err := checkCount(hc, "http://"+apiAddr, records); err != nil; err = checkCount(hc, "http://"+apiAddr, records) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			api.printTail("api", 20)
			return fmt.Errorf("the API did not serve count %d in 2 minutes: %w", records, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	proc.stop() // the table is final; only the API serves from here on
	body, err := get(hc, "http://"+apiAddr+"/api/stats")
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(e.tmp, "stats.json")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		return err
	}
	bare, err := startChild(ctx, e.log("rest-bare"), nil, e.self, "--mode", "bare-rest", "--addr", bareAddr, "--body", bodyFile)
	if err != nil {
		return err
	}
	defer bare.stop()
	if err := waitHTTP(hc, "http://"+bareAddr+"/api/stats"); err != nil {
		return err
	}

	var served map[string]json.RawMessage
	if err := json.Unmarshal(body, &served); err != nil {
		return fmt.Errorf("/api/stats: %w", err)
	}
	fmt.Printf("== rest: GET /api/stats (%d statistics, %d bytes), %d connections, %v per run ==\n", len(served), len(body), e.o.restConns, e.o.restDuration)
	var apiRates, bareRates, ratios []float64
	for i := range e.o.runs {
		a := load(ctx, "http://"+apiAddr+"/api/stats", body, e.o.restConns, e.o.restDuration, api)
		b := load(ctx, "http://"+bareAddr+"/api/stats", body, e.o.restConns, e.o.restDuration, bare)
		fmt.Printf("  run %d: picstats api %s; bare handler %s; ratio %.2f\n", i+1, a, b, a.rate/b.rate)
		if a.err != nil || b.err != nil {
			return errors.Join(a.err, b.err)
		}
		apiRates, bareRates, ratios = append(apiRates, a.rate), append(bareRates, b.rate), append(ratios, a.rate/b.rate)
	}
	fmt.Printf("rest, medians over %d runs: picstats api %s req/s, bare handler %s req/s, ratio %s\n\n",
		e.o.runs, f(median(apiRates), 0), f(median(bareRates), 0), f(median(ratios), 2))
	return nil
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
func load(ctx context.Context, url string, want []byte, conns int, d time.Duration, server *child) loadResult {
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
					b, err := get(hc, url)
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
	cpu0, t0 := server.cpuNow(), time.Now()
	run(t0.Add(d), true)
	el := time.Since(t0).Seconds()
	r := loadResult{rate: float64(n.Load()) / el, serverCPU: (server.cpuNow() - cpu0) / el}
	if p := firstErr.Load(); p != nil {
		r.err = *p
	}
	return r
}

func get(hc *http.Client, url string) ([]byte, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return b, err
}

func waitHTTP(hc *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := get(hc, url)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	for i := range n {
		cl.Produce(ctx, registration(i), func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if p := failed.Load(); p != nil {
		return fmt.Errorf("produce to %s: %w", topic, *p)
	}
	return nil
}

// registration is the i-th feed-like registration: 100 pictures, weights
// from 20 to 5000 g, keyed by picture id.
func registration(i int) *kgo.Record {
	id := fmt.Sprintf("picture-%02d", i%100)
	v := fmt.Sprintf(`{"picture_id":%q,"weight":%d}`, id, 20+(i*7919)%4981)
	return &kgo.Record{Key: []byte(id), Value: []byte(v)}
}
