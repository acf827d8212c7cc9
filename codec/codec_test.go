package codec

import (
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unsafe"
)

func TestDecode(t *testing.T) {
	long := strings.Repeat("x", MaxPictureIDLen+1)
	tests := []struct {
		name   string
		in     string
		want   Registration
		reason Reason // empty: valid
	}{
		{"skeleton record", `{"picture_id": "000000243626", "weight": 1778}`, Registration{"000000243626", 1778}, ""},
		{"extra fields tolerated", `{"picture_id":"a","weight":20,"user":"x","tags":[1]}`, Registration{"a", 20}, ""},
		{"smallest weight", `{"picture_id":"a","weight":1}`, Registration{"a", 1}, ""},
		{"largest weight", `{"picture_id":"a","weight":1000000}`, Registration{"a", MaxWeightGrams}, ""},
		{"longest id", `{"picture_id":"` + long[1:] + `","weight":5}`, Registration{long[1:], 5}, ""},
		{"unicode id", `{"picture_id":"café-42","weight":5}`, Registration{"café-42", 5}, ""},

		{"empty value", ``, Registration{}, ReasonEmpty},
		{"blank value", " \n\t", Registration{}, ReasonEmpty},
		{"not json", `hello`, Registration{}, ReasonMalformedJSON},
		{"truncated json", `{"picture_id":"a","weight":`, Registration{}, ReasonMalformedJSON},
		{"json null", `null`, Registration{}, ReasonMalformedJSON},
		{"json array", `[1,2]`, Registration{}, ReasonMalformedJSON},
		{"json number", `42`, Registration{}, ReasonMalformedJSON},
		{"trailing garbage", `{"picture_id":"a","weight":5} x`, Registration{}, ReasonMalformedJSON},

		{"missing id", `{"weight":5}`, Registration{}, ReasonMissingPictureID},
		{"null id (skeleton without pictures)", `{"picture_id":null,"weight":5}`, Registration{}, ReasonMissingPictureID},
		{"numeric id", `{"picture_id":243626,"weight":5}`, Registration{}, ReasonInvalidPictureID},
		{"object id", `{"picture_id":{"a":1},"weight":5}`, Registration{}, ReasonInvalidPictureID},
		{"empty id", `{"picture_id":"","weight":5}`, Registration{}, ReasonInvalidPictureID},
		{"too long id", `{"picture_id":"` + long + `","weight":5}`, Registration{}, ReasonInvalidPictureID},
		{"control char in id", `{"picture_id":"a\u0000b","weight":5}`, Registration{}, ReasonInvalidPictureID},
		{"invalid utf8 in id", "{\"picture_id\":\"a\xffb\",\"weight\":5}", Registration{}, ReasonInvalidPictureID},

		{"missing weight", `{"picture_id":"a"}`, Registration{}, ReasonMissingWeight},
		{"null weight", `{"picture_id":"a","weight":null}`, Registration{}, ReasonMissingWeight},
		{"string weight", `{"picture_id":"a","weight":"1778"}`, Registration{}, ReasonInvalidWeight},
		{"bool weight", `{"picture_id":"a","weight":true}`, Registration{}, ReasonInvalidWeight},
		{"fractional weight", `{"picture_id":"a","weight":17.5}`, Registration{}, ReasonInvalidWeight},
		{"integral float weight", `{"picture_id":"a","weight":1778.0}`, Registration{}, ReasonInvalidWeight},
		{"exponent weight", `{"picture_id":"a","weight":1e3}`, Registration{}, ReasonInvalidWeight},
		{"zero weight", `{"picture_id":"a","weight":0}`, Registration{}, ReasonWeightOutOfRange},
		{"negative weight", `{"picture_id":"a","weight":-5}`, Registration{}, ReasonWeightOutOfRange},
		{"too heavy", `{"picture_id":"a","weight":1000001}`, Registration{}, ReasonWeightOutOfRange},
		{"beyond int64", `{"picture_id":"a","weight":99999999999999999999999}`, Registration{}, ReasonWeightOutOfRange},
		{"id checked before weight", `{"weight":"x"}`, Registration{}, ReasonMissingPictureID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Decode(%q) = error %v, want %+v", tt.in, err, tt.want)
				}
				if got != tt.want {
					t.Fatalf("Decode(%q) = %+v, want %+v", tt.in, got, tt.want)
				}
				return
			}
			reason, ok := ReasonOf(err)
			if !ok || reason != tt.reason {
				t.Fatalf("Decode(%q) = (%+v, %v), want reason %s", tt.in, got, err, tt.reason)
			}
			if got != (Registration{}) {
				t.Errorf("rejected record decoded to %+v, want the zero Registration", got)
			}
		})
	}
}

func TestPrintableASCIIAgreesWithUnicode(t *testing.T) {
	for c := 0; c < 128; c++ {
		s := string(rune(c))
		if printableASCII(s) && !unicode.IsPrint(rune(c)) {
			t.Errorf("printableASCII accepts %U, which unicode.IsPrint refuses", c)
		}
		if !printableASCII(s) && unicode.IsPrint(rune(c)) {
			t.Errorf("printableASCII refuses %U: the rune path must then decide, and does", c)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	r := Registration{PictureID: "000000243626", Weight: 1778}
	if got := string(Encode(r)); got != `{"picture_id":"000000243626","weight":1778}` {
		t.Fatalf("Encode = %s", got)
	}
	back, err := Decode(Encode(r))
	if err != nil || back != r {
		t.Fatalf("Decode(Encode(%+v)) = %+v, %v", r, back, err)
	}
}

func TestErrorDetailIsShort(t *testing.T) {
	_, err := Decode([]byte(`{"picture_id":"a","weight":"` + strings.Repeat("é", 500) + `"}`))
	if err == nil || len(err.Error()) > 120 {
		t.Fatalf("error %q should be short", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"picture_id": "000000243626", "weight": 1778}`, `{"picture_id":null,"weight":5}`,
		`{"weight":-1}`, `null`, `[]`, `{"picture_id":"a","weight":1e400}`, "",
		` { "weight" : 20 , "picture_id" : "x" } `, `{"picture_id":"a","weight":0123}`, `{"picture_id":"a","weight":-0}`,
		`{"picture_id":"a","picture_id":"b","weight":1}`, `{"picture_id":"éé","weight":99999999999999999999}`,
	} {
		f.Add([]byte(seed))
	}
	dec := NewDecoder() // one for every input, as the processor keeps one per partition
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast path must agree with encoding/json wherever it answers.
		if fast, ferr, ok := decodeCommon(data, nil); ok {
			general, gerr := decodeGeneral(data)
			if fast != general || fmt.Sprint(ferr) != fmt.Sprint(gerr) {
				t.Fatalf("%q: fast path (%+v, %v), general path (%+v, %v)", data, fast, ferr, general, gerr)
			}
		}
		r, err := Decode(data)
		if dr, derr := dec.Decode(data); dr != r || fmt.Sprint(derr) != fmt.Sprint(err) {
			t.Fatalf("%q: Decoder (%+v, %v), Decode (%+v, %v)", data, dr, derr, r, err)
		}
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		// Every accepted record satisfies the documented limits and survives a round trip.
		if r.PictureID == "" || len(r.PictureID) > MaxPictureIDLen || r.Weight < 1 || r.Weight > MaxWeightGrams {
			t.Fatalf("accepted an invalid registration %+v from %q", r, data)
		}
		back, err := Decode(Encode(r))
		if err != nil || back != r {
			t.Fatalf("round trip of %+v gave %+v, %v", r, back, err)
		}
	})
}

// TestDecoderSharesRecurringIDs checks what a Decoder is for: a picture id
// seen before comes back as the same string, without an allocation, also
// after the record's bytes were overwritten.
func TestDecoderSharesRecurringIDs(t *testing.T) {
	dec := NewDecoder()
	value := []byte(`{"picture_id":"000000243626","weight":1778}`)
	first, err := dec.Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	copy(value[len(`{"picture_id":"`):], "999999999999")
	if first.PictureID != "000000243626" {
		t.Fatalf("the id changed with the record's bytes: %q", first.PictureID)
	}
	copy(value[len(`{"picture_id":"`):], "000000243626")
	if allocs := testing.AllocsPerRun(100, func() {
		r, err := dec.Decode(value)
		if err != nil || r != first || unsafe.StringData(r.PictureID) != unsafe.StringData(first.PictureID) {
			t.Fatalf("Decode = %+v, %v; want the first result's string", r, err)
		}
	}); allocs != 0 {
		t.Errorf("a recurring id costs %v allocations, want 0", allocs)
	}
}
