package main

import "testing"

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

func TestMsgCacheShares(t *testing.T) {
	c := newMsgCache()
	a := c.get([]byte(`{"v":1,"type":"snapshot","stats":{}}`))
	b := c.get([]byte(`{"v":1,"type":"snapshot","stats":{}}`))
	if a != b || c.n.Load() != 1 {
		t.Errorf("same bytes decoded twice")
	}
}
