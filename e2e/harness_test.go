// Package e2e holds end-to-end tests: the real processor, API and goka View
// against a real broker (embedded kfake, or Apache Kafka when
// $PICSTATS_TEST_BROKERS is set), driven the way users drive picstats.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/api"
	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/internal/await"
	"github.com/picstats/picstats/processor"
	"github.com/picstats/picstats/stats"
)

// windowedKinds are the windowed statistics a picstats binary keeps by
// default (--windows).
func windowedKinds() []stats.Kind {
	ws, err := stats.ParseWindows(stats.DefaultWindowsSpec)
	if err != nil {
		panic(err)
	}
	return stats.WindowedKinds(stats.All(), ws)
}

// startProcessor runs a processor, with the default windows, until the returned stop is called (or the
// test ends) and fails the test if it stopped with an error.
func startProcessor(t *testing.T, cfg cluster.Config, opts ...processor.Option) (stop func()) {
	t.Helper()
	opts = append([]processor.Option{processor.WithWindows(windowedKinds(), processor.DefaultWindowInterval)}, opts...)
	p, err := processor.New(cfg.Names, stats.All(), cfg.Logger, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.Run(ctx, cfg); err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// startAPI serves the API from a view of the table and returns its URL.
func startAPI(t *testing.T, cfg cluster.Config) string {
	t.Helper()
	srv := api.New(stats.All(), cfg.Logger, api.WithWindows(windowedKinds()))
	hs := httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := api.RunView(ctx, cfg, srv); err != nil {
			t.Errorf("view: %v", err)
		}
	}()
	go func() { defer func() { done <- struct{}{} }(); _ = srv.Hub().Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; <-done; hs.Close() })
	return hs.URL
}

// feed is a known set of records and what picstats must make of them,
// computed here independently of the stats package.
type feed struct {
	records  []*kgo.Record
	count    int64
	sum      int64
	min, max int64
	rejected map[codec.Reason]int64
}

var invalid = []struct {
	value  string
	reason codec.Reason
}{
	{`{"picture_id":"000000243626","weight":-5}`, codec.ReasonWeightOutOfRange},
	{`{"picture_id":"000000243626","weight":"heavy"}`, codec.ReasonInvalidWeight},
	{`{"weight":12}`, codec.ReasonMissingPictureID},
	{`{"picture_id":null,"weight":12}`, codec.ReasonMissingPictureID},
	{`{"picture_id":"000000243626"}`, codec.ReasonMissingWeight},
	{`not json at all`, codec.ReasonMalformedJSON},
	{``, codec.ReasonEmpty},
}

// newFeed makes n records on topic, about 5% of them invalid, with null and
// picture_id keys mixed, as the original feed and keyed producers send.
func newFeed(rng *rand.Rand, topic string, n int) *feed {
	f := &feed{min: -1, rejected: map[codec.Reason]int64{}}
	for range n {
		r := &kgo.Record{Topic: topic}
		if rng.IntN(20) == 0 {
			bad := invalid[rng.IntN(len(invalid))]
			r.Value = []byte(bad.value)
			f.rejected[bad.reason]++
		} else {
			reg := codec.Registration{PictureID: fmt.Sprintf("%012d", rng.IntN(100)), Weight: 20 + rng.Int64N(4980)}
			r.Value = codec.Encode(reg)
			if rng.IntN(2) == 0 {
				r.Key = []byte(reg.PictureID)
			}
			f.count++
			f.sum += reg.Weight
			if f.min < 0 || reg.Weight < f.min {
				f.min = reg.Weight
			}
			f.max = max(f.max, reg.Weight)
		}
		f.records = append(f.records, r)
	}
	return f
}

// add merges another feed's expectations into f.
func (f *feed) add(g *feed) {
	f.records = append(f.records, g.records...)
	f.count += g.count
	f.sum += g.sum
	if f.min < 0 || (g.min >= 0 && g.min < f.min) {
		f.min = g.min
	}
	f.max = max(f.max, g.max)
	for r, n := range g.rejected {
		f.rejected[r] += n
	}
}

func (f *feed) total() int64 {
	n := f.count
	for _, c := range f.rejected {
		n += c
	}
	return n
}

// produce writes the records with a plain Kafka client and waits for acks.
func produce(t *testing.T, cfg cluster.Config, recs []*kgo.Record) {
	t.Helper()
	cl, err := cfg.Client(kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// keepOldRecords sets retention.ms=-1 on the picture topic. Tests that
// produce records with old event times need it on Apache Kafka, which
// judges segments by record timestamps: a segment begun by a record older
// than log.roll.ms (7 days) is rolled at the next append, and one whose
// records are all older than retention.ms (7 days) can be deleted by the
// next retention check before it is read (TestDashboardInABrowser lost its
// 40-day-old registrations so in a CI run).
func keepOldRecords(t *testing.T, cfg cluster.Config) {
	t.Helper()
	cl, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	forever := "-1"
	res, err := kadm.NewClient(cl).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &forever}}, string(cfg.Names.Pictures))
	if err == nil {
		_, err = res.On(string(cfg.Names.Pictures), nil)
	}
	if err != nil {
		t.Fatalf("retention.ms=-1 on %s: %v", cfg.Names.Pictures, err)
	}
}

// snapshot is the API's /api/stats answer.
type snapshot struct {
	Count struct {
		Registrations int64 `json:"registrations"`
	} `json:"count"`
	Average struct {
		Grams         *float64 `json:"average_weight_grams"`
		Total         int64    `json:"total_weight_grams"`
		Registrations int64    `json:"registrations"`
	} `json:"average_weight"`
	Min struct {
		Grams *int64 `json:"min_weight_grams"`
	} `json:"min_weight"`
	Max struct {
		Grams *int64 `json:"max_weight_grams"`
	} `json:"max_weight"`
	Rejected struct {
		Total    int64                  `json:"rejected"`
		ByReason map[codec.Reason]int64 `json:"by_reason"`
	} `json:"rejected"`
}

func getJSON(url string, v any) (int, error) {
	resp, err := apiClient.Get(url) // checked against api/openapi.json
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %w", body, err)
	}
	return resp.StatusCode, nil
}

// waitForTotal polls the API until it has seen want records (valid and
// rejected), and returns that answer. It fails the test after timeout.
func waitForTotal(t *testing.T, url string, want int64, timeout time.Duration) snapshot {
	t.Helper()
	var s snapshot
	await.Until(t, timeout, fmt.Sprintf("the API to show %d records", want), func() error {
		s = snapshot{}
		switch status, err := getJSON(url+"/api/stats", &s); {
		case err != nil:
			return err
		case status != http.StatusOK:
			return fmt.Errorf("status %d", status)
		case s.Count.Registrations+s.Rejected.Total < want:
			return fmt.Errorf("it shows %d valid + %d rejected", s.Count.Registrations, s.Rejected.Total)
		}
		return nil
	})
	return s
}

// exactProblems lists how the API's answer differs from the ground truth.
func exactProblems(got snapshot, want *feed) []string {
	var problems []string
	check := func(what string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			problems = append(problems, fmt.Sprintf("%s = %v, want %v", what, got, want))
		}
	}
	check("count", got.Count.Registrations, want.count)
	check("average_weight.registrations", got.Average.Registrations, want.count)
	check("average_weight.total_weight_grams", got.Average.Total, want.sum)
	if got.Average.Grams == nil || *got.Average.Grams != float64(want.sum)/float64(want.count) {
		problems = append(problems, fmt.Sprintf("average_weight_grams = %v, want %v", got.Average.Grams, float64(want.sum)/float64(want.count)))
	}
	check("min_weight_grams", deref(got.Min.Grams), want.min)
	check("max_weight_grams", deref(got.Max.Grams), want.max)
	var rejected int64
	for _, n := range want.rejected {
		rejected += n
	}
	check("rejected", got.Rejected.Total, rejected)
	check("rejected.by_reason", got.Rejected.ByReason, want.rejected)
	return problems
}

// waitForExact polls the API until every statistic equals the ground truth
// and returns that answer, or after timeout the last answer and how it
// differs. The statistics are separate table keys, updated one after
// another, so one answer may show some a moment before others.
func waitForExact(t *testing.T, url string, want *feed, timeout time.Duration) (snapshot, []string) {
	t.Helper()
	var s snapshot
	var problems []string
	answered := false
	await.Within(timeout, func() bool {
		var got snapshot
		if status, err := getJSON(url+"/api/stats", &got); err != nil || status != http.StatusOK {
			return false
		}
		s, problems, answered = got, exactProblems(got, want), true
		return len(problems) == 0
	})
	if !answered {
		t.Fatalf("no answer from %s/api/stats within %v", url, timeout)
	}
	return s, problems
}

// assertExact checks that the API's statistics reach the ground truth.
func assertExact(t *testing.T, url string, want *feed) snapshot {
	t.Helper()
	got, problems := waitForExact(t, url, want, 30*time.Second)
	for _, p := range problems {
		t.Error(p)
	}
	return got
}

// onePassResults computes every statistic's JSON result, and every windowed
// statistic's (keyed name@size), in one pass over
// the records of the picture topic, with the stats package's aggregates and
// the records' own timestamps: what the engine's batches, snapshots, crashes
// and merges must reproduce exactly. (The statistics themselves are checked
// against independent computations in the stats package and by
// assertExact.)
func onePassResults(t *testing.T, recs []*kgo.Record) map[string]string {
	t.Helper()
	aggs := map[string]stats.Stat{}
	for _, k := range append(stats.All(), windowedKinds()...) {
		aggs[k.Name] = k.New()
	}
	for _, r := range recs {
		rec := stats.Record{Time: r.Timestamp}
		reg, err := codec.Decode(r.Value)
		if err != nil {
			rec.Rejected, _ = codec.ReasonOf(err)
		} else {
			rec.Registration = reg
		}
		for _, a := range aggs {
			a.Add(&rec)
		}
	}
	out := map[string]string{}
	for name, a := range aggs {
		b, err := json.Marshal(a.Result())
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(b)
	}
	return out
}

// waitForResults polls /api/stats until every statistic's result equals
// want, and returns the names of those that still differ after timeout
// (with the last answer). Statistics are separate table keys, updated one
// after another, so a first answer may be a moment behind on some.
func waitForResults(t *testing.T, url string, want map[string]string, timeout time.Duration) (differ []string, got map[string]string) {
	t.Helper()
	await.Within(timeout, func() bool {
		var raw map[string]json.RawMessage
		if status, err := getJSON(url+"/api/stats", &raw); err != nil || status != http.StatusOK {
			return false
		}
		for name := range want { // a windowed statistic's windows are served on their own
			base, size, windowed := strings.Cut(name, "@")
			if !windowed {
				continue
			}
			var w json.RawMessage
			if status, err := getJSON(url+"/api/stats/"+base+"/windows?size="+size, &w); err != nil || status != http.StatusOK {
				return false
			}
			raw[name] = w
		}
		got, differ = map[string]string{}, nil
		for name := range want {
			var buf bytes.Buffer
			if raw[name] != nil {
				_ = json.Compact(&buf, raw[name])
			}
			got[name] = buf.String()
			if got[name] != want[name] {
				differ = append(differ, name)
			}
		}
		slices.Sort(differ)
		return len(differ) == 0
	})
	if got == nil {
		t.Fatalf("no answer from %s/api/stats within %v", url, timeout)
	}
	return differ, got
}

// assertEveryStatistic checks that the API serves, for every registered
// statistic, exactly its one-pass result over the picture topic.
func assertEveryStatistic(t *testing.T, cfg cluster.Config, url string) {
	t.Helper()
	want := onePassResults(t, readTopic(t, cfg, string(cfg.Names.Pictures)))
	differ, got := waitForResults(t, url, want, 30*time.Second)
	for _, name := range differ {
		t.Errorf("%s: the API serves\n  %s\nbut one pass over the topic gives\n  %s", name, got[name], want[name])
	}
}
