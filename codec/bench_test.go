package codec

import "testing"

func BenchmarkDecode(b *testing.B) {
	v := []byte(`{"picture_id":"000000243626","weight":1778}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder(b *testing.B) {
	v := []byte(`{"picture_id":"000000243626","weight":1778}`)
	dec := NewDecoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(v); err != nil {
			b.Fatal(err)
		}
	}
}
