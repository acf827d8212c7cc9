package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/picstats/picstats/api"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/internal/testkafka"
)

// TestReadinessFollowsTheBroker is an operator's view of a broker outage:
// /readyz turns 503 within 5 s of the View losing the broker, REST goes on
// serving the last values and says how old they are, and once the broker
// is back the View picks it up by itself and /readyz turns 200 again with
// the new records in.
func TestReadinessFollowsTheBroker(t *testing.T) {
	cfg, broker := testkafka.StartBroker(t)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 13))
	want := newFeed(rng, string(cfg.Names.Pictures), 2_000)
	stopProcessor := startProcessor(t, cfg)
	url := startAPI(t, cfg)
	produce(t, cfg, want.records)
	assertExact(t, url, want)
	awaitReadyz(t, url, http.StatusOK, time.Minute)

	// The processor stops first: this test is about the View, and a
	// processor whose snapshots cannot be stored exits by design.
	stopProcessor()
	stopped := time.Now()
	broker.Stop(t)
	awaitReadyz(t, url, http.StatusServiceUnavailable, time.Minute)
	t.Logf("/readyz answered 503 %v after the broker was told to stop", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(time.Until(stopped.Add(5 * time.Second))) // the promise under test is "within 5 s"
	if code := readyz(t, url).StatusCode; code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d 5 s after the broker stopped, want 503", code)
	}

	// REST serves the last values meanwhile, with their age.
	r, err := apiClient.Get(url + "/api/stats/count")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	age, err := strconv.ParseFloat(r.Header.Get("Picstats-Data-Age"), 64)
	if r.StatusCode != http.StatusOK || err != nil || age < api.DefaultStaleAfter.Seconds() {
		t.Fatalf("/api/stats/count while the broker is away: %d, Picstats-Data-Age %q; want 200 and an age over %v",
			r.StatusCode, r.Header.Get("Picstats-Data-Age"), api.DefaultStaleAfter)
	}
	if got := assertExact(t, url, want); got.Count.Registrations != want.count {
		t.Fatalf("count %d while the broker is away, want the last value %d", got.Count.Registrations, want.count)
	}

	restarted := time.Now()
	broker.Start(t)
	more := newFeed(rng, string(cfg.Names.Pictures), 2_000)
	want.add(more)
	startProcessor(t, cfg)
	produce(t, cfg, more.records)
	waitForTotal(t, url, want.total(), 2*time.Minute)
	assertExact(t, url, want)
	awaitReadyz(t, url, http.StatusOK, time.Minute)
	t.Logf("ready again with every record %v after the broker was started", time.Since(restarted).Round(time.Millisecond))
}

func readyz(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := apiClient.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// awaitReadyz polls /readyz until it answers code.
func awaitReadyz(t *testing.T, url string, code int, timeout time.Duration) {
	t.Helper()
	await.Until(t, timeout, fmt.Sprintf("/readyz to answer %d", code), func() error {
		resp, err := apiClient.Get(url + "/readyz")
		if err != nil {
			return err // a process just started may not listen yet
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			return fmt.Errorf("it answers %d", resp.StatusCode)
		}
		return nil
	})
}
