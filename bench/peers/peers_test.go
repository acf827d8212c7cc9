package main

import (
	"slices"
	"strings"
	"testing"
)

// A contender is exact only when all four statistics agree with the jar's
// --produce output, whatever order and repeats its output has; averages
// formatted differently do not matter.
func TestOutputsAreJudgedByTheirTotals(t *testing.T) {
	exp, err := parseExpected("produced 3 records\ncount\t{\"registrations\":3}\n" +
		"average_weight\t{\"average_weight_grams\":20.333333333333332,\"total_weight_grams\":61,\"registrations\":3}\n" +
		"min_weight\t{\"min_weight_grams\":1}\nmax_weight\t{\"max_weight_grams\":50}\n")
	if want := (totals{count: 3, total: 61, avgCount: 3, min: 1, max: 50, seen: [4]bool{true, true, true, true}}); err != nil || exp != want {
		t.Fatalf("parseExpected = %+v, %v; want %+v", exp, err, want)
	}
	if _, err := parseExpected("count\t{\"registrations\":3}\n"); err == nil {
		t.Error("an incomplete result was accepted")
	}
	avg, lo, hi := `{"average_weight_grams":20.3333,"total_weight_grams":61,"registrations":3}`, `{"min_weight_grams":1}`, `{"max_weight_grams":50}`
	for _, tt := range []struct {
		name string
		out  [][2]string // key, value
		want bool
	}{
		{"exact", [][2]string{{"count", `{"registrations":3}`}, {"average_weight", avg}, {"min_weight", lo}, {"max_weight", hi}}, true},
		{"latest value wins", [][2]string{{"count", `{"registrations":2}`}, {"average_weight", avg}, {"min_weight", lo}, {"max_weight", hi}, {"count", `{"registrations":3}`}}, true},
		{"counted twice", [][2]string{{"count", `{"registrations":6}`}, {"average_weight", `{"total_weight_grams":122,"registrations":6}`}, {"min_weight", lo}, {"max_weight", hi}}, false},
		{"average of other records", [][2]string{{"count", `{"registrations":3}`}, {"average_weight", `{"total_weight_grams":61,"registrations":2}`}, {"min_weight", lo}, {"max_weight", hi}}, false},
		{"a statistic missing", [][2]string{{"count", `{"registrations":3}`}, {"average_weight", avg}, {"min_weight", lo}}, false},
		{"null min", [][2]string{{"count", `{"registrations":3}`}, {"average_weight", avg}, {"min_weight", `{"min_weight_grams":null}`}, {"max_weight", hi}}, false},
		{"others ignored", [][2]string{{"count", `{"registrations":3}`}, {"average_weight", avg}, {"min_weight", lo}, {"max_weight", hi}, {"rejected", `{"registrations":9}`}, {"count", ``}}, true},
	} {
		var got totals
		for _, r := range tt.out {
			if err := got.apply(r[0], []byte(r[1])); err != nil {
				t.Fatal(err)
			}
		}
		if (got == exp) != tt.want {
			t.Errorf("%s: exact = %v, want %v (%v)", tt.name, got == exp, tt.want, got)
		}
	}
	if err := new(totals).apply("count", []byte("{")); err == nil {
		t.Error("bad JSON accepted")
	}
}

// TestStatsFlagNeedsTheJudgedStatistics: --stats must give picstats the
// four statistics every contender is judged by, or the drain would wait
// 20 minutes for a result that never comes.
func TestStatsFlagNeedsTheJudgedStatistics(t *testing.T) {
	defer func(s string) { picstatsStats = s }(picstatsStats)
	for _, tt := range []struct {
		stats string
		ok    bool
	}{
		{statsList, true},
		{"all", true},
		{"all,-pictures", true},
		{"count,pictures", false},
		{"all,-min_weight", false},
		{"bogus", false},
	} {
		picstatsStats = tt.stats
		o := options{runs: 1, latencyRate: 1, restConns: 1, liveRate: 1}
		if err := o.parse("10", "bare,picstats", "drain", "1,2,4"); (err == nil) != tt.ok {
			t.Errorf("--stats %s: err = %v, want ok = %v", tt.stats, err, tt.ok)
		}
	}
}

// TestProcessorsFlag: the scaling phase's --processors takes numbers of
// processes from 1 to the backlog's partitions, and the phase needs
// picstats among the contenders; anything else stops with a message that
// names the flag.
func TestProcessorsFlag(t *testing.T) {
	for _, tt := range []struct {
		processors, contenders, phases string
		want                           string // "" for no error, else part of it
	}{
		{"1,2,4", "bare,picstats", "scaling", ""},
		{"1", "picstats", "scaling", ""},
		{"8,1", "picstats", "scaling", ""},
		{"", "picstats", "drain", ""}, // not used
		{"0", "picstats", "scaling", `--processors: "0" is not a positive number`},
		{"1,-2", "picstats", "scaling", `--processors: "-2" is not a positive number`},
		{"two", "picstats", "scaling", `--processors: "two" is not a positive number`},
		{"1,9", "picstats", "scaling", "--processors: 9 is more than 8"},
		{"", "picstats", "scaling", "--processors: want at least one"},
		{" , ", "picstats", "scaling", "--processors: want at least one"},
		{"1,2,4", "bare", "scaling", "add the picstats contender"},
		{"1,2", "bare", "drain", ""},
	} {
		o := options{runs: 1, latencyRate: 1, restConns: 1, liveRate: 1}
		err := o.parse("10", tt.contenders, tt.phases, tt.processors)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("--processors %q --contenders %s --phases %s: err = %v, want %q", tt.processors, tt.contenders, tt.phases, err, tt.want)
		}
	}
	o := options{runs: 1, latencyRate: 1, restConns: 1, liveRate: 1}
	if err := o.parse("10", "picstats", "scaling", "4, 1 ,2"); err != nil || !slices.Equal(o.processors, []int{4, 1, 2}) {
		t.Errorf("--processors '4, 1 ,2' = %v, %v; want [4 1 2] in that order", o.processors, err)
	}
}
