package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/logbuf"
	"github.com/picstats/picstats/stats"
)

// TestRequestMetricsByRouteTemplate checks that every request is counted
// under its route's template (never the raw path), its method and status,
// the websocket at its upgrade, and that /metrics serves them.
func TestRequestMetricsByRouteTemplate(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(stats.All(), slog.New(slog.DiscardHandler), WithMetrics(reg, reg))
	s.SetTable(mapTable{recovered: true, values: map[string][]byte{"count": encoded(t, "count")}})
	s.MarkRecovered()
	s.ServeImages(t.TempDir())
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = s.Hub().Run(ctx) }()
	defer func() { cancel(); <-hubDone }()

	do := func(method, path string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	do("GET", "/api/stats/count")
	do("GET", "/api/stats/min_weight")
	do("GET", "/api/stats/median")
	do("HEAD", "/api/stats")
	do("POST", "/api/stats")
	do("GET", "/no/such/thing")
	do("GET", "/images/nope.jpg")
	do("GET", "/static/app.js")
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, _, err := conn.ReadMessage(); err != nil { // the snapshot
		t.Fatal(err)
	}

	// A client has its answer a moment before the handler has returned
	// and the request is counted: poll.
	await.Until(t, 10*time.Second, "every request to be counted under its route template", func() error {
		for _, c := range []struct{ route, method, code string }{
			{"/api/stats/{name}", "GET", "200"},
			{"/api/stats/{name}", "GET", "404"},
			{"/api/stats", "HEAD", "200"},
			{"unmatched", "POST", "405"},
			{"unmatched", "GET", "404"},
			{"/images/{file}", "GET", "404"},
			{"/static/", "GET", "200"},
			{"/api/ws", "GET", "101"}, // counted while the connection is open
		} {
			want := 1.0
			if c.route == "/api/stats/{name}" && c.code == "200" {
				want = 2
			}
			if got := testutil.ToFloat64(s.http.requests.WithLabelValues(c.route, c.method, c.code)); got != want {
				return fmt.Errorf("picstats_http_requests_total{route=%q,method=%q,code=%q} = %v, want %v", c.route, c.method, c.code, got, want)
			}
		}
		// Likewise the snapshot is counted once its write has returned.
		if n := s.hub.MessagesSent(); n != 1 {
			return fmt.Errorf("websocket messages sent: %d, want 1", n)
		}
		return nil
	})
	// Only templates, never a raw path; every route is listed from the start.
	routes := map[string]bool{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "picstats_http_requests_total" {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "route" {
					routes[l.GetValue()] = true
				}
			}
		}
	}
	want := []string{"/", "/api/openapi.json", "/api/statistics", "/api/stats", "/api/stats/{name}", "/api/stats/{name}/windows", "/api/ws",
		"/healthz", "/images/{file}", "/metrics", "/readyz", "/static/", "unmatched"}
	if got := slices.Sorted(maps.Keys(routes)); !slices.Equal(got, want) {
		t.Errorf("route labels %v, want %v", got, want)
	}

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`picstats_http_requests_total{code="200",method="GET",route="/api/stats/{name}"} 2`,
		`picstats_http_request_duration_seconds_count{route="/api/ws"} 1`,
		`picstats_ws_clients 1`,
		`picstats_ws_messages_sent_total 1`,
		`picstats_ws_clients_dropped_total{reason="too_slow"} 0`,
		`picstats_view_state{state="ready"} 0`, // no end offsets sampled yet
		`picstats_view_state{state="stale"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	conn.Close()
	await.True(t, 10*time.Second, "the hub to count the closed client", func() bool {
		return s.Hub().Clients() == 0
	})
}

// TestViewMetricsFollowFreshness checks the View's lag per partition,
// state and data age against the sampled end offsets.
func TestViewMetricsFollowFreshness(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(stats.All(), slog.New(slog.DiscardHandler), WithMetrics(reg, nil))
	s.SetTable(mapTable{recovered: true})
	s.MarkRecovered()
	s.fresh.applied(0, 9)                       // partition 0 at offset 10
	s.fresh.sampled(time.Now(), []int64{10, 5}) // partition 1 not read yet
	expected := `
# HELP picstats_view_lag_records Records of a table partition the API's View had not applied at the last check of the table's end offsets.
# TYPE picstats_view_lag_records gauge
picstats_view_lag_records{partition="0"} 0
picstats_view_lag_records{partition="1"} 5
# HELP picstats_view_state The View's state as /readyz judges it: 1 for the current state (recovering, stale or ready), 0 for the others.
# TYPE picstats_view_state gauge
picstats_view_state{state="ready"} 0
picstats_view_state{state="recovering"} 0
picstats_view_state{state="stale"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "picstats_view_lag_records", "picstats_view_state"); err != nil {
		t.Error(err)
	}
	s.fresh.applied(1, 4)
	s.fresh.sampled(time.Now().Add(time.Millisecond), []int64{10, 5})
	expected = strings.NewReplacer(`partition="1"} 5`, `partition="1"} 0`,
		`state="ready"} 0`, `state="ready"} 1`, `state="stale"} 1`, `state="stale"} 0`).Replace(expected)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "picstats_view_lag_records", "picstats_view_state"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(viewCollector{s}, "picstats_view_data_age_seconds"); n != 1 {
		t.Errorf("%d picstats_view_data_age_seconds once current, want 1", n)
	}
}

// TestProgressLine checks the API's periodic INFO line: requests, the
// View's state and lag, websocket clients, under stable keys.
func TestProgressLine(t *testing.T) {
	logs := &logbuf.Buffer{}
	s := New(stats.All(), slog.New(slog.NewJSONHandler(logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.logProgress(ctx, 10*time.Millisecond)
	await.True(t, 10*time.Second, "a first progress line", func() bool { return strings.Contains(logs.String(), `"api progress"`) })
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	await.True(t, 10*time.Second, "a progress line with the request", func() bool { return strings.Contains(logs.String(), `"requests":1,`) })
	for _, want := range []string{`"requests_per_second":`, `"view_state":"recovering"`, `"view_lag":0`, `"ws_clients":0`, `"ws_messages":0`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the progress lines lack %s: %s", want, logs.String())
		}
	}
}
