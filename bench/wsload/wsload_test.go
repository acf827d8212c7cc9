package main

import "testing"

func TestParseMessage(t *testing.T) {
	p := parseMessage([]byte(`{"v":1,"type":"update","stats":{"count":{ "registrations": 42 },"max_weight":{"max_weight_grams":7}}}`))
	if p.err != nil || p.typ != "update" || !p.hasCount || p.count != 42 || string(p.stats["count"]) != `{"registrations":42}` {
		t.Fatalf("got %+v", p)
	}
	for _, bad := range []string{`nope`, `{"v":2,"type":"update","stats":{}}`, `{"v":1,"type":"other","stats":{}}`, `{"v":1,"type":"update"}`} {
		if p := parseMessage([]byte(bad)); p.err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	var c msgCache
	if a, b := c.get([]byte(`{"v":1,"type":"snapshot","stats":{}}`)), c.get([]byte(`{"v":1,"type":"snapshot","stats":{}}`)); a != b {
		t.Error("the same bytes were decoded twice")
	}
}

func TestDiff(t *testing.T) {
	want := map[string][]byte{"a": []byte(`1`), "b": []byte(`{"x":2}`)}
	if d := diff(map[string][]byte{"a": []byte(`1`), "b": []byte(`{"x":2}`)}, want); d != "" {
		t.Errorf("equal maps differ: %s", d)
	}
	for _, got := range []map[string][]byte{nil, {"a": []byte(`1`)}, {"a": []byte(`1`), "b": []byte(`{"x":3}`)},
		{"a": []byte(`1`), "b": []byte(`{"x":2}`), "c": []byte(`0`)}} {
		if diff(got, want) == "" {
			t.Errorf("%v: reported equal", got)
		}
	}
}
