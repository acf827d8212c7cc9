package stats

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/picstats/picstats/codec"
)

func valid(id string, w int64) Record {
	return Record{Registration: codec.Registration{PictureID: id, Weight: w}}
}

func rejected(r codec.Reason) Record { return Record{Rejected: r} }

// aggregate adds recs to a new aggregate of the named statistic.
func aggregate(t *testing.T, name string, recs []Record) Stat {
	t.Helper()
	k, ok := Lookup(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	return onePass(k, recs)
}

// resultAs decodes s's JSON result into a T, as an API client would.
func resultAs[T any](t *testing.T, s Stat) T {
	t.Helper()
	var v T
	b, err := json.Marshal(s.Result())
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		t.Fatalf("result %s: %v", b, err)
	}
	return v
}

// TestResults pins each statistic's JSON result for small known streams.
func TestResults(t *testing.T) {
	stream := []Record{valid("a", 100), rejected(codec.ReasonInvalidWeight), valid("b", 25), valid("a", 4000), rejected(codec.ReasonInvalidWeight), rejected(codec.ReasonEmpty)}
	tests := []struct {
		stat  string
		recs  []Record
		wantJ string
	}{
		{"count", nil, `{"registrations":0}`},
		{"count", stream, `{"registrations":3}`},
		{"average_weight", nil, `{"average_weight_grams":null,"total_weight_grams":0,"registrations":0}`},
		{"average_weight", stream, `{"average_weight_grams":1375,"total_weight_grams":4125,"registrations":3}`},
		{"average_weight", []Record{valid("a", 1), valid("a", 2)}, `{"average_weight_grams":1.5,"total_weight_grams":3,"registrations":2}`},
		{"min_weight", nil, `{"min_weight_grams":null}`},
		{"min_weight", stream, `{"min_weight_grams":25}`},
		{"max_weight", nil, `{"max_weight_grams":null}`},
		{"max_weight", stream, `{"max_weight_grams":4000}`},
		{"rejected", nil, `{"rejected":0,"by_reason":{}}`},
		{"rejected", stream, `{"rejected":3,"by_reason":{"empty_value":1,"invalid_weight":2}}`},
		{"stddev_weight", nil, `{"stddev_weight_grams":null,"registrations":0}`},
		{"stddev_weight", []Record{valid("a", 10), valid("b", 20)}, `{"stddev_weight_grams":5,"registrations":2}`},
		{"weight_percentiles", nil, `{"p50_weight_grams":null,"p90_weight_grams":null,"p99_weight_grams":null,"relative_error":0.01,"registrations":0}`},
		{"weight_percentiles", stream, `{"p50_weight_grams":100.5,"p90_weight_grams":100.5,"p99_weight_grams":100.5,"relative_error":0.01,"registrations":3}`},
		{"pictures", nil, `{"pictures":{},"tracked_pictures":0,"untracked_registrations":0,"max_tracked_pictures":1000}`},
		{"pictures", stream, `{"pictures":{"a":{"registrations":2,"average_weight_grams":2050},"b":{"registrations":1,"average_weight_grams":25}},"tracked_pictures":2,"untracked_registrations":0,"max_tracked_pictures":1000}`},
		{"top_pictures", nil, `{"by_registrations":[],"by_average_weight":[],"exact":true}`},
		{"distinct_pictures", nil, `{"distinct_pictures":0,"exact":true,"relative_standard_error":0}`},
		{"distinct_pictures", stream, `{"distinct_pictures":2,"exact":true,"relative_standard_error":0}`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d records", tt.stat, len(tt.recs)), func(t *testing.T) {
			k, ok := Lookup(tt.stat)
			if !ok {
				t.Fatalf("%s not registered", tt.stat)
			}
			got, err := json.Marshal(onePass(k, tt.recs).Result())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.wantJ {
				t.Fatalf("result %s, want %s", got, tt.wantJ)
			}
		})
	}
}

func ExampleKind_Encode() {
	k, _ := Lookup("average_weight")
	s := k.New()
	s.Add(&Record{Registration: codec.Registration{PictureID: "000000243626", Weight: 1778}})
	s.Add(&Record{Registration: codec.Registration{PictureID: "000000460347", Weight: 1635}})

	b, _ := k.Encode(s)    // what the changelog stores: version byte, then the payload
	back, _ := k.Decode(b) // what a restarted processor or the API reads back
	res, _ := json.Marshal(back.Result())
	fmt.Printf("%d bytes: %s\n", len(b), res)
	// Output: 4 bytes: {"average_weight_grams":1706.5,"total_weight_grams":3413,"registrations":2}
}
