package main

import (
	"testing"
	"time"
)

func TestParseMessage(t *testing.T) {
	p := parseMessage([]byte(`{"v":1,"type":"update","stats":{"count":{ "registrations": 42 },"max_weight":{"max_weight_grams":7}}}`))
	if p.err != nil || p.typ != "update" || !p.hasCount || p.count != 42 {
		t.Fatalf("got %+v", p)
	}
	if got := string(p.stats["count"]); got != `{"registrations":42}` {
		t.Errorf("count not compacted: %s", got)
	}
	for _, bad := range []string{`nope`, `{"v":2,"type":"update","stats":{}}`, `{"v":1,"type":"other","stats":{}}`, `{"v":1,"type":"update"}`} {
		if p := parseMessage([]byte(bad)); p.err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestDiff(t *testing.T) {
	want := map[string][]byte{"a": []byte(`1`), "b": []byte(`{"x":2}`)}
	if d := diff(map[string][]byte{"a": []byte(`1`), "b": []byte(`{"x":2}`)}, want); d != "" {
		t.Errorf("equal maps differ: %s", d)
	}
	for _, got := range []map[string][]byte{
		nil,
		{"a": []byte(`1`)},
		{"a": []byte(`1`), "b": []byte(`{"x":3}`)},
		{"a": []byte(`1`), "b": []byte(`{"x":2}`), "c": []byte(`0`)},
	} {
		if diff(got, want) == "" {
			t.Errorf("%v: reported equal", got)
		}
	}
}

func TestPct(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]time.Duration{0: 1, .5: 5, .9: 9, .99: 10, 1: 10} {
		if got := pct(s, p); got != want {
			t.Errorf("pct(%v) = %v, want %v", p, got, want)
		}
	}
	if pct([]int(nil), .5) != 0 {
		t.Error("empty")
	}
}

func TestMsgCacheShares(t *testing.T) {
	c := newMsgCache()
	a := c.get([]byte(`{"v":1,"type":"snapshot","stats":{}}`))
	b := c.get([]byte(`{"v":1,"type":"snapshot","stats":{}}`))
	if a != b || c.n.Load() != 1 {
		t.Errorf("same bytes decoded twice")
	}
}
