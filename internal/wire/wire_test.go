package wire

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	b := binary.AppendVarint(nil, -42)
	b = binary.AppendUvarint(b, 7)
	b = AppendString(b, "héllo")
	b = AppendBytes(b, []byte{1, 2})
	b = append(b, 9)
	r := NewReader(b)
	if v := r.Varint("v"); v != -42 {
		t.Errorf("Varint = %d", v)
	}
	if v := r.Uvarint("u"); v != 7 {
		t.Errorf("Uvarint = %d", v)
	}
	if s := r.String("s"); s != "héllo" {
		t.Errorf("String = %q", s)
	}
	if bs := r.Bytes("b"); string(bs) != "\x01\x02" {
		t.Errorf("Bytes = %v", bs)
	}
	if c := r.Byte("c"); c != 9 {
		t.Errorf("Byte = %d", c)
	}
	if r.More() || r.Done() != nil {
		t.Errorf("More %v, Done %v at the end", r.More(), r.Done())
	}
}

func TestErrors(t *testing.T) {
	for name, read := range map[string]func(*Reader){
		"truncated varint": func(r *Reader) { r.Varint("v") },
		"length too long":  func(r *Reader) { r.Bytes("b") },
		"trailing bytes":   func(r *Reader) { r.Byte("c") },
	} {
		r := NewReader([]byte{0x80 | 5, 0x80})
		if name == "length too long" {
			r = NewReader([]byte{5, 1})
		}
		if name == "trailing bytes" {
			r = NewReader([]byte{1, 2})
		}
		read(r)
		if err := r.Done(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Done() = %v, want ErrCorrupt", name, err)
		}
	}
}
