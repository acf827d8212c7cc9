package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
)

// metrics is one scrape of a /metrics endpoint.
type metrics map[string]*dto.MetricFamily

// scrape GETs url/metrics and parses Prometheus' text format.
func scrape(url string) (metrics, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s/metrics: %s: %s", url, resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func mustScrape(t *testing.T, url string) metrics {
	t.Helper()
	m, err := scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sum adds up the samples of metric name (counter, gauge or untyped; a
// histogram's count) whose labels include every pair of match.
func (m metrics) sum(name string, match ...string) float64 {
	var total float64
	f := m[name]
	if f == nil {
		return 0
	}
	for _, s := range f.Metric {
		if hasLabels(s, match) {
			total += value(s)
		}
	}
	return total
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	return 0
}

// byLabel returns the samples of name by the value of label.
func (m metrics) byLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	if f := m[name]; f != nil {
		for _, s := range f.Metric {
			for _, l := range s.Label {
				if l.GetName() == label {
					out[l.GetValue()] += value(s)
				}
			}
		}
	}
	return out
}

func hasLabels(s *dto.Metric, match []string) bool {
	for i := 0; i+1 < len(match); i += 2 {
		found := false
		for _, l := range s.Label {
			if l.GetName() == match[i] && l.GetValue() == match[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMetricsCountEveryRecord produces a known set of registrations, runs
// a processor and an API as the built binary, and checks their /metrics:
// the processor read exactly that many records and rejected exactly the
// bad ones by reason, its lag falls to 0 in every partition, the table
// stage applied snapshots and recovered, and the API counted exactly the
// requests this test made, by route template and status.
func TestMetricsCountEveryRecord(t *testing.T) {
	cfg := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want := newFeed(rand.New(rand.NewPCG(16, 16)), string(cfg.Names.Pictures), 20_000)
	produce(t, cfg, want.records) // a backlog: the processor drains it

	bin := buildBinary(t)
	common := []string{"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix}
	_, procURL := startBinary(t, bin, append([]string{"processor", "--partitions", "4", "--metrics-addr", "127.0.0.1:0", "--batch-size", "1000"}, common...)...)
	_, apiURL := startBinary(t, bin, append([]string{"api", "--addr", "127.0.0.1:0"}, common...)...)

	// The drain, as an operator's dashboard would see it.
	lastLog := ""
	await.Until(t, 2*time.Minute, "the processor to read every record with lag 0 in every partition", func() error {
		m, err := scrape(procURL)
		if err != nil {
			return err
		}
		read := m.sum("picstats_input_records_total")
		lag := m.byLabel("picstats_input_lag_records", "partition")
		if line := fmt.Sprintf("records read %.0f, lag by partition %v", read, lag); line != lastLog {
			t.Log(line)
			lastLog = line
		}
		switch {
		case len(lag) != cfg.Partitions:
			return fmt.Errorf("lag of %d partitions, want %d: %v", len(lag), cfg.Partitions, lag)
		case int64(read) != want.total():
			return fmt.Errorf("%.0f records read, want %d", read, want.total())
		}
		for p, l := range lag {
			if l != 0 {
				return fmt.Errorf("partition %s lags %.0f records", p, l)
			}
		}
		return nil
	})
	waitForTotal(t, apiURL, want.total(), time.Minute)
	assertExact(t, apiURL, want)

	m := mustScrape(t, procURL)
	if got := m.sum("picstats_input_records_total"); int64(got) != want.total() {
		t.Errorf("picstats_input_records_total sums to %.0f, want %d (each record read once)", got, want.total())
	}
	for _, r := range codec.Reasons {
		if got := m.sum("picstats_input_rejected_records_total", "reason", string(r)); int64(got) != want.rejected[r] {
			t.Errorf("picstats_input_rejected_records_total{reason=%q} = %.0f, want %d", r, got, want.rejected[r])
		}
	}
	for _, name := range []string{"picstats_input_batches_closed_total", "picstats_table_snapshots_applied_total",
		"picstats_input_snapshot_send_seconds", "picstats_input_commit_seconds", "picstats_table_recovery_seconds"} {
		if m.sum(name) <= 0 {
			t.Errorf("%s = %v, want more than 0 after a drain of %d records in batches of 1000", name, m.sum(name), want.total())
		}
	}
	for _, name := range []string{"picstats_input_committed_lag_records", "picstats_table_snapshots_ignored_total",
		"picstats_input_open_snapshot_flushes_total", "go_goroutines", "process_resident_memory_bytes"} {
		if m[name] == nil {
			t.Errorf("the processor's /metrics has no %s", name)
		}
	}
	for _, name := range []string{"picstats_kafka_input_connects_total", "picstats_kafka_snapshots_connects_total"} {
		if m[name] == nil {
			t.Errorf("the processor's /metrics has no %s (franz-go's client metrics, kprom)", name)
		}
	}

	// The API counts what this test asks, by route template and status.
	before := mustScrape(t, apiURL)
	ask := func(path string, code int) {
		resp, err := http.Get(apiURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Fatalf("GET %s: %d, want %d", path, resp.StatusCode, code)
		}
	}
	for range 3 {
		ask("/api/statistics", http.StatusOK)
	}
	ask("/api/stats/count", http.StatusOK)
	ask("/api/stats/min_weight", http.StatusOK)
	ask("/api/stats/median", http.StatusNotFound)
	ask("/no/such/route", http.StatusNotFound)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(apiURL, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil { // the snapshot
		t.Fatal(err)
	}
	requests := []struct {
		route, code string
		n           float64
	}{
		{"/api/statistics", "200", 3},
		{"/api/stats/{name}", "200", 2},
		{"/api/stats/{name}", "404", 1},
		{"unmatched", "404", 1},
		{"/api/ws", "101", 1},
		{"/metrics", "200", 1}, // the scrape before
	}
	// A client has its answer a moment before the server has counted it:
	// poll until every request is counted, then check none is counted twice.
	var after metrics
	await.Until(t, 30*time.Second, "the API to count this test's requests", func() error {
		m, err := scrape(apiURL)
		if err != nil {
			return err
		}
		after = m
		for _, r := range requests {
			got := after.sum("picstats_http_requests_total", "route", r.route, "code", r.code) -
				before.sum("picstats_http_requests_total", "route", r.route, "code", r.code)
			if r.route == "/metrics" {
				continue // each poll adds one
			}
			if got != r.n {
				return fmt.Errorf("picstats_http_requests_total{route=%q,code=%q} grew by %v, want %v", r.route, r.code, got, r.n)
			}
		}
		// The hub counts a message once its write has returned, which
		// may be a moment after the client has read it.
		if got := after.sum("picstats_ws_messages_sent_total") - before.sum("picstats_ws_messages_sent_total"); got < 1 {
			return fmt.Errorf("picstats_ws_messages_sent_total grew by %v, want at least the snapshot", got)
		}
		return nil
	})
	ws.Close()
	if got := after.sum("picstats_http_request_duration_seconds", "route", "/api/statistics") -
		before.sum("picstats_http_request_duration_seconds", "route", "/api/statistics"); got != 3 {
		t.Errorf("picstats_http_request_duration_seconds_count{route=\"/api/statistics\"} grew by %v, want 3", got)
	}
	if got := after.sum("picstats_http_requests_total", "route", "/metrics") - before.sum("picstats_http_requests_total", "route", "/metrics"); got < 1 {
		t.Errorf("picstats_http_requests_total{route=\"/metrics\"} grew by %v, want at least the scrape before", got)
	}
	if got := after.sum("picstats_ws_clients"); got != 1 {
		t.Errorf("picstats_ws_clients = %v with one websocket open, want 1", got)
	}
	if got := after.sum("picstats_view_state", "state", "ready"); got != 1 {
		t.Errorf("picstats_view_state{state=\"ready\"} = %v, want 1", got)
	}
	viewLag := after.byLabel("picstats_view_lag_records", "partition")
	if len(viewLag) == 0 {
		t.Error("the API's /metrics has no picstats_view_lag_records")
	}
	for _, name := range []string{"picstats_view_data_age_seconds", "picstats_ws_clients_dropped_total", "go_goroutines", "process_open_fds"} {
		if after[name] == nil {
			t.Errorf("the API's /metrics has no %s", name)
		}
	}
	t.Logf("API: view lag by partition %v; routes counted: %v", viewLag, slices.Sorted(maps.Keys(after.byLabel("picstats_http_requests_total", "route"))))
}

// TestProbesOfEveryRole checks the probe endpoints as the README documents
// them: the processor's /healthz, /readyz and /metrics on --metrics-addr,
// answering while it waits for the cluster (/readyz 503 with a reason) and
// after it has recovered its table and joined its group (200); the API's
// /healthz and /readyz likewise; and the probe role, which exits 0 only
// for a 200. (datafeed and tail serve no HTTP.)
func TestProbesOfEveryRole(t *testing.T) {
	cfg, broker := testkafka.StartBroker(t)
	bin := buildBinary(t)
	common := []string{"--brokers", strings.Join(cfg.Brokers, ","), "--topic-prefix", cfg.Names.Prefix}

	broker.Stop(t) // the roles start before the cluster is there
	procCmd, procURL := startBinary(t, bin, append([]string{"processor", "--partitions", "4", "--metrics-addr", "127.0.0.1:0"}, common...)...)
	apiCmd, apiURL := startBinary(t, bin, append([]string{"api", "--addr", "127.0.0.1:0"}, common...)...)

	expect := func(url string, code int, status string) {
		t.Helper()
		var body map[string]any
		get := getJSON // the API's answers are checked against its OpenAPI description
		if strings.HasPrefix(url, procURL) {
			get = getProcessorJSON
		}
		got, err := get(url, &body)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		if got != code || body["status"] != status {
			t.Fatalf("GET %s: %d %v, want %d with status %q", url, got, body, code, status)
		}
		t.Logf("GET %s: %d %v", url, got, body)
	}
	probe := func(url string) error {
		out, err := exec.Command(bin, "probe", "--url", url, "--timeout", "5s").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}

	// Before the cluster is there: alive, not ready.
	expect(procURL+"/healthz", http.StatusOK, "ok")
	expect(procURL+"/readyz", http.StatusServiceUnavailable, "not_ready")
	expect(apiURL+"/healthz", http.StatusOK, "ok")
	expect(apiURL+"/readyz", http.StatusServiceUnavailable, "recovering")
	if _, err := scrape(procURL); err != nil {
		t.Fatalf("the processor's /metrics before the cluster is there: %v", err)
	}
	if err := probe(procURL + "/readyz"); err == nil {
		t.Fatal("picstats probe of the processor's /readyz exited 0 before it was ready")
	}
	if err := probe(procURL + "/healthz"); err != nil {
		t.Fatalf("picstats probe of the processor's /healthz: %v", err)
	}

	broker.Start(t)
	await.Until(t, 2*time.Minute, "the processor's /readyz to answer 200", func() error {
		var body map[string]any
		if code, err := getProcessorJSON(procURL+"/readyz", &body); err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %v %v", code, body, err)
		}
		return nil
	})
	expect(procURL+"/readyz", http.StatusOK, "ready")
	expect(procURL+"/healthz", http.StatusOK, "ok")
	if m := mustScrape(t, procURL); m.sum("picstats_table_recovery_seconds") <= 0 {
		t.Errorf("picstats_table_recovery_seconds = %v once ready, want more than 0", m.sum("picstats_table_recovery_seconds"))
	}
	if err := probe(procURL + "/readyz"); err != nil {
		t.Fatalf("picstats probe of the ready processor: %v", err)
	}
	awaitReadyz(t, apiURL, http.StatusOK, 2*time.Minute)
	expect(apiURL+"/readyz", http.StatusOK, "ready")
	expect(apiURL+"/healthz", http.StatusOK, "ok")
	if err := probe(apiURL + "/readyz"); err != nil {
		t.Fatalf("picstats probe of the ready API: %v", err)
	}
	stopGracefully(t, procCmd)
	stopGracefully(t, apiCmd)
}

// getProcessorJSON is getJSON for the processor's probes, which are not
// the API's and so not in its OpenAPI description.
func getProcessorJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// TestAllServesEveryRoleOnOneRegistry runs role all with --metrics-addr:
// the API's /metrics and the processor's serve the same registry, with
// the input stage's, the API's and the Go runtime's metrics, once each.
func TestAllServesEveryRoleOnOneRegistry(t *testing.T) {
	bin := buildBinary(t)
	cmd := dieWithTest(exec.Command(bin, "all", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--rate", "200"))
	cmd.Dir = ".."
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	urls := make(chan [2]string, 2)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urls <- [2]string{strings.SplitN(sc.Text(), " listening", 2)[0], m[1]}
			}
		}
	}()
	var apiURL, procURL string
	for range 2 {
		select {
		case u := <-urls:
			if strings.Contains(u[0], "processor") {
				procURL = u[1]
			} else {
				apiURL = u[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("picstats all printed fewer than two URLs within 30 s")
		}
	}
	for _, url := range []string{apiURL, procURL} {
		await.Until(t, time.Minute, url+"/metrics to show records read", func() error {
			m, err := scrape(url)
			if err != nil {
				return err
			}
			if m.sum("picstats_input_records_total") == 0 {
				return fmt.Errorf("no records read yet")
			}
			for _, name := range []string{"picstats_http_requests_total", "picstats_view_state", "picstats_table_snapshots_applied_total",
				"picstats_kafka_input_connects_total", "picstats_kafka_api_sampler_connects_total", "go_goroutines"} {
				if m[name] == nil {
					return fmt.Errorf("no %s", name)
				}
			}
			return nil
		})
	}
	var body map[string]any
	if code, err := getProcessorJSON(procURL+"/readyz", &body); err != nil || code != http.StatusOK {
		t.Errorf("the processor's /readyz in all: %d %v %v", code, body, err)
	}
	stopGracefully(t, cmd)
}
