package e2e

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

// TestWindowsAreExactOverThreeDays is a session with event times: the
// registrations carry timestamps over the last three days, out of order,
// some 40 days old (late for every window size) and some invalid; a
// processor stops half way and another goes on from the changelog. Every
// window of every statistic, and time ranges asked of the API, equal a
// one-pass computation over the picture topic; the stats topic carries
// each window under name@size@start.
func TestWindowsAreExactOverThreeDays(t *testing.T) {
	cfg := testkafka.Start(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	keepOldRecords(t, cfg)
	rng := rand.New(rand.NewPCG(17, 17))
	now := time.Now()
	timed := func(n int) []*kgo.Record {
		f := newFeed(rng, string(cfg.Names.Pictures), n)
		for i, r := range f.records {
			r.Timestamp = now.Add(-time.Duration(rng.Int64N(int64(72 * time.Hour))))
			if i%100 == 0 {
				r.Timestamp = now.Add(-40 * 24 * time.Hour)
			}
		}
		return f.records
	}
	first := timed(3000)
	produce(t, cfg, first)

	const batch = 200
	stop := startProcessor(t, cfg, processor.WithBatchSize(batch))
	url := startAPI(t, cfg)
	waitForTotal(t, url, int64(len(first)), 2*time.Minute)
	assertEveryStatistic(t, cfg, url)
	// A dashboard follows a day, a day's weight percentiles and the daily
	// windows over the websocket from here on.
	day := now.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	dayRange := "?from=" + day.Format(time.RFC3339) + "&to=" + day.Add(24*time.Hour).Format(time.RFC3339)
	live := followTopics(t, url, "count"+dayRange, "weight_percentiles"+dayRange, "count/windows?size=1d")
	stop()

	second := timed(1000)
	produce(t, cfg, second)
	startProcessor(t, cfg, processor.WithBatchSize(batch))
	waitForTotal(t, url, int64(len(first)+len(second)), 2*time.Minute)
	assertEveryStatistic(t, cfg, url)

	recs := readTopic(t, cfg, string(cfg.Names.Pictures))
	var daily stats.WindowsResult
	if _, err := getJSON(url+"/api/stats/count/windows?size=1d", &daily); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(recs)+99) / 100; daily.Late != want {
		t.Errorf("count@1d: late %d, want the %d records 40 days old", daily.Late, want)
	}

	// The websocket's topics reach what REST answers, pushed as they change.
	for _, topic := range live.topics {
		await.True(t, time.Minute, "websocket topic "+topic+" to equal the REST answer", func() bool {
			var want json.RawMessage
			if _, err := getJSON(url+"/api/stats/"+topic, &want); err != nil {
				return false
			}
			return live.latest(topic) == string(want)
		})
	}

	// Ranges: the last hour (minute windows, with the minute now falls in),
	// a whole day (hour windows: the smallest size on whose grid it lies
	// that reaches back), and the last 24 hours (too far back for minutes).
	// A relative range is answered from the clock of the request, so its
	// bounds are checked by size and grid; the result over the bounds the
	// answer gives must equal one pass.
	for _, c := range []struct {
		query         string
		from          time.Time // zero for a relative range
		span          time.Duration
		windowSeconds int64
		names         []string
	}{
		{"from=-1h", time.Time{}, 61 * time.Minute, 60, []string{"count", "average_weight", "rejected"}},
		{"from=" + day.Format(time.RFC3339) + "&to=" + day.Add(24*time.Hour).Format(time.RFC3339), day, 24 * time.Hour, 3600, []string{"count", "weight_percentiles", "max_weight"}},
		{"from=-24h", time.Time{}, 25 * time.Hour, 3600, []string{"stddev_weight", "latest_registration"}},
	} {
		for _, name := range c.names {
			var got struct {
				From, To      time.Time
				WindowSeconds int64 `json:"window_seconds"`
				Records       int64
				Result        json.RawMessage
			}
			status, err := getJSON(url+"/api/stats/"+name+"?"+c.query, &got)
			if err != nil || status != http.StatusOK {
				t.Fatalf("%s?%s: status %d, %v", name, c.query, status, err)
			}
			size := time.Duration(c.windowSeconds) * time.Second
			if got.WindowSeconds != c.windowSeconds || got.To.Sub(got.From) != c.span || !got.From.Equal(got.From.Truncate(size)) ||
				(!c.from.IsZero() && !got.From.Equal(c.from)) || (c.from.IsZero() && got.To.Before(now)) {
				t.Errorf("%s?%s: answered [%v, %v) from %d s windows; want %v from %d s windows", name, c.query, got.From, got.To, got.WindowSeconds, c.span, c.windowSeconds)
			}
			k, _ := stats.Lookup(name)
			want, n := k.New(), int64(0)
			for _, r := range recs {
				if !r.Timestamp.Before(got.From) && r.Timestamp.Before(got.To) {
					want.Add(record(r))
					n++
				}
			}
			wantJSON, _ := json.Marshal(want.Result())
			if got.Records != n || string(got.Result) != string(wantJSON) {
				t.Errorf("%s?%s: %d records, %s; one pass over [%v, %v) gives %d records, %s", name, c.query, got.Records, got.Result, got.From, got.To, n, wantJSON)
			}
		}
	}

	// Ranges that cannot be answered say what can.
	for _, q := range []string{
		"from=" + day.Add(90*time.Second).Format(time.RFC3339),              // on no window grid
		"from=" + day.Add(-3*24*time.Hour+time.Minute).Format(time.RFC3339), // minutes, but older than every minute kept
		"from=yesterday",
		"to=-1h",
	} {
		var e struct {
			Error   string
			Windows []struct{ Window string }
		}
		status, err := getJSON(url+"/api/stats/count?"+q, &e)
		if err != nil || status != http.StatusBadRequest || e.Error == "" {
			t.Errorf("count?%s: status %d (%v), error %q; want 400 with an error", q, status, err, e.Error)
		}
		if strings.HasPrefix(q, "from=2") && len(e.Windows) != 3 {
			t.Errorf("count?%s: the answer lists %d window sizes, want 3: %+v", q, len(e.Windows), e)
		}
	}

	// The stats topic: the latest value under count@1h@<start> of every
	// hour window is that window's result.
	var hourly stats.WindowsResult
	if _, err := getJSON(url+"/api/stats/count/windows?size=1h", &hourly); err != nil {
		t.Fatal(err)
	}
	latest := map[string]string{}
	for _, r := range readTopic(t, cfg, string(cfg.Names.Stats)) {
		latest[string(r.Key)] = string(r.Value)
	}
	for _, w := range hourly.Windows {
		key := "count@1h@" + w.Start.Format(time.RFC3339)
		want, _ := json.Marshal(w)
		if latest[key] != string(want) {
			t.Errorf("stats topic %s = %s, want %s", key, latest[key], want)
		}
	}
	if len(hourly.Windows) < 48 {
		t.Errorf("count@1h keeps %d windows, want the 48 hours of its retention", len(hourly.Windows))
	}
}

// record is a picture record as the statistics see it.
func record(r *kgo.Record) *stats.Record {
	rec := &stats.Record{Time: r.Timestamp}
	reg, err := codec.Decode(r.Value)
	if err != nil {
		rec.Rejected, _ = codec.ReasonOf(err)
	} else {
		rec.Registration = reg
	}
	return rec
}

// topicFollower keeps the latest value of each websocket topic it
// subscribed to.
type topicFollower struct {
	topics []string
	mu     sync.Mutex
	values map[string]string
}

func (f *topicFollower) latest(topic string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.values[topic]
}

// followTopics subscribes a websocket client of the API at url to topics
// and follows them until the test ends; an error message fails the test.
func followTopics(t *testing.T, url string, topics ...string) *topicFollower {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/api/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, _, err := conn.ReadMessage(); err != nil { // the snapshot of the default topics
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if err := conn.WriteJSON(map[string]any{"v": 1, "type": "subscribe", "stats": topics}); err != nil {
		t.Fatal(err)
	}
	f := &topicFollower{topics: topics, values: map[string]string{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		subscribed := false
		for {
			var m struct {
				Type, Error string
				Stats       map[string]json.RawMessage
			}
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			if m.Type == "error" {
				t.Errorf("websocket subscription refused: %s", m.Error)
				return
			}
			subscribed = subscribed || m.Type == "snapshot"
			if !subscribed { // updates of the default topics, before the snapshot of these
				continue
			}
			f.mu.Lock()
			for k, v := range m.Stats {
				if !slices.Contains(topics, k) {
					t.Errorf("websocket sent topic %q, not subscribed to", k)
				}
				f.values[k] = string(v)
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return f
}
