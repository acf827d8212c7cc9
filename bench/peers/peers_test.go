package main

import "testing"

// The jar's --produce output, as bench/kstreams prints it.
const produced = "count\t{\"registrations\":3}\n" +
	"average_weight\t{\"average_weight_grams\":20.333333333333332,\"total_weight_grams\":61,\"registrations\":3}\n" +
	"min_weight\t{\"min_weight_grams\":1}\n" +
	"max_weight\t{\"max_weight_grams\":50}\n"

func TestParseExpected(t *testing.T) {
	got, err := parseExpected("produced 3 records\n" + produced)
	if want := (expected{count: 3, total: 61, min: 1, max: 50}); err != nil || got != want {
		t.Fatalf("parseExpected = %+v, %v; want %+v", got, err, want)
	}
	if _, err := parseExpected("count\t{\"registrations\":3}\n"); err == nil {
		t.Error("an incomplete result was accepted")
	}
}

// A contender is exact only when all four statistics agree, whatever order
// and repeats its output has; averages formatted differently do not matter.
func TestTotalsJudgeOutputs(t *testing.T) {
	exp := expected{count: 3, total: 61, min: 1, max: 50}
	type rec struct{ key, value string }
	tests := []struct {
		name string
		out  []rec
		want bool
	}{
		{"exact", []rec{{"count", `{"registrations":3}`}, {"average_weight", `{"average_weight_grams":20.3333,"total_weight_grams":61,"registrations":3}`},
			{"min_weight", `{"min_weight_grams":1}`}, {"max_weight", `{"max_weight_grams":50}`}}, true},
		{"latest value wins", []rec{{"count", `{"registrations":2}`}, {"average_weight", `{"total_weight_grams":61,"registrations":3}`},
			{"min_weight", `{"min_weight_grams":1}`}, {"max_weight", `{"max_weight_grams":50}`}, {"count", `{"registrations":3}`}}, true},
		{"counted twice", []rec{{"count", `{"registrations":6}`}, {"average_weight", `{"total_weight_grams":122,"registrations":6}`},
			{"min_weight", `{"min_weight_grams":1}`}, {"max_weight", `{"max_weight_grams":50}`}}, false},
		{"average of other records", []rec{{"count", `{"registrations":3}`}, {"average_weight", `{"total_weight_grams":61,"registrations":2}`},
			{"min_weight", `{"min_weight_grams":1}`}, {"max_weight", `{"max_weight_grams":50}`}}, false},
		{"a statistic missing", []rec{{"count", `{"registrations":3}`}, {"average_weight", `{"total_weight_grams":61,"registrations":3}`},
			{"min_weight", `{"min_weight_grams":1}`}}, false},
		{"null min", []rec{{"count", `{"registrations":3}`}, {"average_weight", `{"total_weight_grams":61,"registrations":3}`},
			{"min_weight", `{"min_weight_grams":null}`}, {"max_weight", `{"max_weight_grams":50}`}}, false},
		{"other statistics ignored", []rec{{"count", `{"registrations":3}`}, {"average_weight", `{"total_weight_grams":61,"registrations":3}`},
			{"min_weight", `{"min_weight_grams":1}`}, {"max_weight", `{"max_weight_grams":50}`}, {"rejected", `{"registrations":9}`}, {"count", ``}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tot totals
			for _, r := range tt.out {
				if err := tot.apply(r.key, []byte(r.value)); err != nil {
					t.Fatal(err)
				}
			}
			if got := tot.equal(exp); got != tt.want {
				t.Errorf("equal = %v, want %v (%v)", got, tt.want, tot)
			}
		})
	}
	var tot totals
	if err := tot.apply("count", []byte("{")); err == nil {
		t.Error("bad JSON accepted")
	}
}
