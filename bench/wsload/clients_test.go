package main

import "testing"

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
