package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/picstats/picstats/stats"
)

func TestFreshness(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	type sample struct {
		at   time.Duration // after t0
		ends []int64
	}
	tests := []struct {
		name    string
		applied map[int32]int64 // partition → last applied offset
		samples []sample
		now     time.Duration
		want    status
	}{
		{"no sample yet", map[int32]int64{0: 4}, nil, time.Second,
			status{position: 5}},
		{"caught up with the newest sample", map[int32]int64{0: 4, 1: 9}, []sample{{0, []int64{5, 10}}}, 2 * time.Second,
			status{position: 15, known: true, age: 2 * time.Second}},
		{"behind the newest, caught up with an older", map[int32]int64{0: 4, 1: 9},
			[]sample{{0, []int64{5, 10}}, {time.Second, []int64{5, 12}}}, 4 * time.Second,
			status{position: 15, lag: 2, known: true, age: 4 * time.Second}},
		{"behind every sample", map[int32]int64{0: 1}, []sample{{0, []int64{5}}}, time.Second,
			status{position: 2, lag: 3}},
		{"an empty partition needs nothing", map[int32]int64{1: 2}, []sample{{0, []int64{0, 3}}}, 0,
			status{position: 3, known: true}},
		{"a partition never applied is behind", map[int32]int64{0: 4}, []sample{{0, []int64{5, 3}}}, 0,
			status{position: 5, lag: 3}},
		{"samples out of order are dropped", map[int32]int64{0: 4},
			[]sample{{2 * time.Second, []int64{5}}, {time.Second, []int64{9}}}, 3 * time.Second,
			status{position: 5, known: true, age: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f freshness
			for p, off := range tt.applied {
				f.applied(p, off)
			}
			for _, s := range tt.samples {
				f.sampled(t0.Add(s.at), s.ends)
			}
			if got := f.status(t0.Add(tt.now)); got != tt.want {
				t.Errorf("status = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFreshnessKeepsBoundedSamples(t *testing.T) {
	var f freshness
	t0 := time.Now()
	for i := range 3 * maxSamples {
		f.sampled(t0.Add(time.Duration(i)*time.Second), []int64{int64(i + 1)})
	}
	if n := len(f.samples); n != maxSamples {
		t.Fatalf("%d samples kept, want %d", n, maxSamples)
	}
	// Never applied anything: as old as nothing known.
	if st := f.status(t0); st.known || st.lag != 3*maxSamples {
		t.Errorf("status %+v", st)
	}
}

// /readyz is 200 only while the values are current; the statistics routes
// serve the last values meanwhile and say how fresh they are.
func TestReadinessFollowsFreshness(t *testing.T) {
	s := New(stats.All(), slog.New(slog.DiscardHandler), WithStaleAfter(3*time.Second))
	h := s.Handler()
	get := func(path string) (*httptest.ResponseRecorder, readiness) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var r readiness
		_ = json.Unmarshal(rec.Body.Bytes(), &r)
		return rec, r
	}
	expect := func(step string, code int, status string) {
		t.Helper()
		rec, r := get("/readyz")
		if rec.Code != code || r.Status != status {
			t.Errorf("%s: /readyz = %d %s, want %d %s", step, rec.Code, rec.Body, code, status)
		}
	}
	expect("no view", 503, "recovering")
	s.SetTable(mapTable{recovered: true})
	expect("view not recovered yet", 503, "recovering")
	if rec, _ := get("/api/stats/count"); rec.Code != 503 {
		t.Errorf("/api/stats/count before recovery: %d", rec.Code)
	}
	s.MarkRecovered()
	expect("recovered, end offsets not checked yet", 503, "stale")

	s.fresh.applied(0, 41)
	s.fresh.sampled(time.Now().Add(-10*time.Second), []int64{42})
	expect("caught up with a check 10 s old", 503, "stale")
	rec, _ := get("/api/stats/count")
	if rec.Code != 200 || rec.Header().Get("Picstats-View-Position") != "42" || rec.Header().Get("Picstats-View-Lag") != "0" {
		t.Errorf("/api/stats/count while stale: %d %v, want 200 with the freshness headers", rec.Code, rec.Header())
	}
	if age, err := strconv.ParseFloat(rec.Header().Get("Picstats-Data-Age"), 64); err != nil || age < 10 || age > 60 {
		t.Errorf("Picstats-Data-Age %q (%v), want about 10 s", rec.Header().Get("Picstats-Data-Age"), err)
	}

	s.fresh.sampled(time.Now(), []int64{50})
	expect("behind the newest check", 503, "stale")
	if _, r := get("/readyz"); r.Lag != 8 {
		t.Errorf("lag %d, want 8", r.Lag)
	}
	s.fresh.applied(0, 49)
	expect("caught up with the newest check", 200, "ready")
}
