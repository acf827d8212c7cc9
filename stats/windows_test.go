package stats

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/picstats/picstats/codec"
)

func TestWindowsKeepTheirRetentionAndCountLateRecords(t *testing.T) {
	count, _ := Lookup("count")
	k, err := count.Windowed(Window{Size: time.Minute, Retention: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	at := func(hhmmss string) time.Time {
		tm, err := time.Parse(time.DateTime, "2026-12-03 "+hhmmss)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	valid := codec.Registration{PictureID: "p", Weight: 10}
	steps := []struct {
		name     string
		rec      Record
		windows  string // start:records of each window kept
		wantLate int64
	}{
		{"first record", Record{Registration: valid, Time: at("10:00:10")}, "10:00:1", 0},
		{"the next minute", Record{Registration: valid, Time: at("10:01:05")}, "10:00:1 10:01:1", 0},
		{"a rejected record counts in its window too", Record{Rejected: codec.ReasonEmpty, Time: at("10:01:30")}, "10:00:1 10:01:2", 0},
		{"10:03 evicts 10:00: three windows kept", Record{Registration: valid, Time: at("10:03:59")}, "10:01:2 10:03:1", 1},
		{"older than every window kept: late", Record{Registration: valid, Time: at("10:00:59")}, "10:01:2 10:03:1", 2},
		{"out of order, inside the retention", Record{Registration: valid, Time: at("10:02:00")}, "10:01:2 10:02:1 10:03:1", 2},
		{"far ahead: everything before is late", Record{Registration: valid, Time: at("12:00:00")}, "12:00:1", 6},
	}
	w := k.New().(*Windows)
	for _, s := range steps {
		w.Add(&s.rec)
		res := w.Result().(WindowsResult)
		var got []string
		for _, x := range res.Windows {
			got = append(got, fmt.Sprintf("%s:%d", x.Start.Format("15:04"), x.Records))
		}
		if strings.Join(got, " ") != s.windows || res.Late != s.wantLate {
			t.Fatalf("%s: windows %v, late %d; want %s, late %d", s.name, got, res.Late, s.windows, s.wantLate)
		}
	}
}

func TestWindowsBefore1970RoundDown(t *testing.T) {
	count, _ := Lookup("count")
	k, _ := count.Windowed(Minute)
	w := k.New().(*Windows)
	w.Add(&Record{Registration: codec.Registration{PictureID: "p", Weight: 1}, Time: time.UnixMilli(-1)})
	if got := w.Result().(WindowsResult).Windows[0].Start; !got.Equal(time.Unix(-60, 0)) {
		t.Errorf("a record 1 ms before 1970 is in the window starting %v, want 1969-12-31T23:59:00Z", got)
	}
}

func TestWindowedNamesAndValidation(t *testing.T) {
	count, _ := Lookup("count")
	for _, c := range []struct {
		w       Window
		name    string
		wantErr bool
	}{
		{Minute, "count@1m", false},
		{Hour, "count@1h", false},
		{Day, "count@1d", false},
		{Window{Size: 90 * time.Second, Retention: 90 * time.Minute}, "count@90s", false},
		{Window{Size: 0, Retention: time.Hour}, "", true},
		{Window{Size: 1500 * time.Millisecond, Retention: 3 * time.Second}, "", true},
		{Window{Size: time.Hour, Retention: 90 * time.Minute}, "", true},
		{Window{Size: time.Hour, Retention: time.Minute}, "", true},
	} {
		k, err := count.Windowed(c.w)
		if (err != nil) != c.wantErr || (err == nil && k.Name != c.name) {
			t.Errorf("Windowed(%+v) = %q, %v; want %q (error: %v)", c.w, k.Name, err, c.name, c.wantErr)
		}
	}
}

func ExampleKind_Windowed() {
	avg, _ := Lookup("average_weight")
	hourly, _ := avg.Windowed(Hour)
	s := hourly.New()
	for i, grams := range []int64{100, 300, 1000} {
		s.Add(&Record{
			Registration: codec.Registration{PictureID: "000000243626", Weight: grams},
			Time:         time.Date(2026, 12, 3, 9, 30+20*i, 0, 0, time.UTC),
		})
	}
	b, _ := json.MarshalIndent(s.Result(), "", "  ")
	fmt.Println(hourly.Name)
	fmt.Println(string(b))
	// Output:
	// average_weight@1h
	// {
	//   "window_seconds": 3600,
	//   "retention_seconds": 172800,
	//   "newest_record_time": "2026-12-03T10:10:00Z",
	//   "late": 0,
	//   "windows": [
	//     {
	//       "start": "2026-12-03T09:00:00Z",
	//       "end": "2026-12-03T10:00:00Z",
	//       "records": 2,
	//       "result": {
	//         "average_weight_grams": 200,
	//         "total_weight_grams": 400,
	//         "registrations": 2
	//       }
	//     },
	//     {
	//       "start": "2026-12-03T10:00:00Z",
	//       "end": "2026-12-03T11:00:00Z",
	//       "records": 1,
	//       "result": {
	//         "average_weight_grams": 1000,
	//         "total_weight_grams": 1000,
	//         "registrations": 1
	//       }
	//     }
	//   ]
	// }
}
