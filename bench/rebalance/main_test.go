package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		events []string
		err    string // a part of the error; "" for none
	}{
		{nil, allEvents, ""},
		{[]string{"--events", "restart,steady", "--runs", "3", "--static"}, []string{"steady", "restart"}, ""},
		{[]string{"--events", "join, leave,join"}, []string{"join", "leave"}, ""},
		{[]string{"--events", "leave"}, nil, "leave needs join"},
		{[]string{"--events", "steady,bogus"}, nil, `unknown event "bogus"`},
		{[]string{"--events", ","}, nil, "no event given"},
		{[]string{"--runs", "0"}, nil, "--runs 0"},
		{[]string{"--rate", "0"}, nil, "--rate 0"},
		{[]string{"--window", "0s"}, nil, "--window 0s"},
		{[]string{"--kill-window", "-1s"}, nil, "--kill-window -1s"},
		{[]string{"--poll", "30s"}, nil, "want less than --window"},
		{[]string{"--brokers", "nohost"}, nil, "--brokers"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
		{[]string{"--bogus"}, nil, "flag provided but not defined"},
	} {
		o, err := parseOptions(tt.args, io.Discard)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want one with %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(o.events, tt.events) {
			t.Errorf("%q: events %q, err %v; want %q", tt.args, o.events, err, tt.events)
		}
	}
	if o, err := parseOptions([]string{"--args", " --log-level  debug ", "--static"}, io.Discard); err != nil || !slices.Equal(o.args, []string{"--log-level", "debug"}) || !o.static {
		t.Errorf("--args: %q (static %v), %v", o.args, o.static, err)
	}
	if _, err := parseOptions([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

// The longest stall counts from the event to the first growth, between
// growths, and from the last growth to the end of the window; a failed
// read (-1) or an unchanged count is no growth.
func TestLongestStall(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s := []sample{{at(-20), 5}, {at(0), 6}, {at(100), 6}, {at(300), 7}, {at(400), -1}, {at(1400), 7}, {at(1500), 9}, {at(1600), 10}}
	for _, tt := range []struct {
		from, to int
		want     time.Duration
	}{
		{0, 1600, 1200 * time.Millisecond}, // 300 → 1500
		{0, 2600, 1200 * time.Millisecond}, // and 1600 → 2600 is 1000
		{0, 3000, 1400 * time.Millisecond}, // 1600 → 3000
		{0, 200, 200 * time.Millisecond},   // no growth after the event
		{1500, 1600, 100 * time.Millisecond},
	} {
		if got := longestStall(s, at(tt.from), at(tt.to)); got != tt.want {
			t.Errorf("[%d, %d] ms: %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}
