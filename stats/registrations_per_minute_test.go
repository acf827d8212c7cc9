package stats

import (
	"testing"
	"time"
)

type perMinuteResult struct {
	WindowMinutes int           `json:"window_minutes"`
	Latest        *time.Time    `json:"latest_minute"`
	PerMinute     []MinuteCount `json:"per_minute"`
}

func at(t time.Time, w int64) Record {
	r := valid("a", w)
	r.Time = t
	return r
}

func TestRegistrationsPerMinute(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 30, 0, time.UTC)
	res := resultAs[perMinuteResult](t, aggregate(t, "registrations_per_minute", nil))
	if res.Latest != nil || len(res.PerMinute) != 0 || res.WindowMinutes != WindowMinutes {
		t.Fatalf("empty: %+v", res)
	}

	recs := []Record{
		at(t0, 1),                                              // 10:00, evicted once 11:00 is seen
		at(t0.Add(time.Minute), 1),                             // 10:01, the oldest minute kept
		at(t0.Add(time.Minute+20e9), 1),                        // 10:01 again
		at(t0.Add(time.Hour), 1),                               // 11:00, the latest minute
		at(t0.Add(10*time.Minute), 1),                          // 10:10, late but inside the window
		at(t0.Add(-5*time.Minute), 1),                          // 09:55, late and outside: not counted
		{Rejected: "empty_value", Time: t0.Add(2 * time.Hour)}, // rejected: moves nothing
	}
	res = resultAs[perMinuteResult](t, aggregate(t, "registrations_per_minute", recs))
	latest := t0.Add(time.Hour).Truncate(time.Minute)
	if res.Latest == nil || !res.Latest.Equal(latest) {
		t.Fatalf("latest minute %v, want %v", res.Latest, latest)
	}
	if len(res.PerMinute) != WindowMinutes {
		t.Fatalf("%d minutes listed, want %d", len(res.PerMinute), WindowMinutes)
	}
	want := map[time.Time]int64{
		t0.Add(time.Minute).Truncate(time.Minute):      2,
		t0.Add(10 * time.Minute).Truncate(time.Minute): 1,
		latest: 1,
	}
	for i, m := range res.PerMinute {
		if wantMinute := latest.Add(time.Duration(i-WindowMinutes+1) * time.Minute); !m.Minute.Equal(wantMinute) {
			t.Fatalf("entry %d is minute %v, want %v (oldest first, no gaps)", i, m.Minute, wantMinute)
		}
		if m.Registrations != want[m.Minute] {
			t.Errorf("%v: %d registrations, want %d", m.Minute, m.Registrations, want[m.Minute])
		}
	}
}

func TestUnixMinuteFloorsBefore1970(t *testing.T) {
	for _, tt := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(0, 0), 0}, {time.Unix(59, 0), 0}, {time.Unix(60, 0), 1},
		{time.Unix(-1, 0), -1}, {time.Unix(-60, 0), -1}, {time.Unix(-61, 0), -2},
	} {
		if got := unixMinute(tt.t); got != tt.want {
			t.Errorf("unixMinute(%d s) = %d, want %d", tt.t.Unix(), got, tt.want)
		}
	}
}
