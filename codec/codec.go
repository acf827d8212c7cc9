// Package codec decodes and encodes picture registrations, the JSON records on
// the picture topic, and validates them strictly.
//
// A valid record looks like
//
//	{"picture_id": "000000243626", "weight": 1778}
//
// picture_id is a non-empty string of at most MaxPictureIDLen bytes of
// printable UTF-8; weight is an integer number of grams in [1, MaxWeightGrams].
// Unknown extra fields are tolerated so that producers can add fields without
// breaking picstats. Decode never panics: every input either yields a
// Registration or an *Error that names the Reason.
package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Limits of a valid registration.
const (
	// MaxPictureIDLen bounds picture_id in bytes; the skeleton's ids are 12.
	MaxPictureIDLen = 128
	// MaxWeightGrams is one tonne: far above any picture, low enough that a
	// sum of weights cannot overflow int64 before 9·10^12 registrations.
	MaxWeightGrams = 1_000_000
)

// Registration is one picture registration.
type Registration struct {
	PictureID string `json:"picture_id"`
	Weight    int64  `json:"weight"` // grams
}

// Reason says why a record was rejected. Reasons are stable identifiers:
// they are keys of the rejected statistic and appear on picture.rejected.
type Reason string

// The reasons a record can be rejected for.
const (
	ReasonEmpty            Reason = "empty_value"
	ReasonMalformedJSON    Reason = "malformed_json"
	ReasonMissingPictureID Reason = "missing_picture_id"
	ReasonInvalidPictureID Reason = "invalid_picture_id"
	ReasonMissingWeight    Reason = "missing_weight"
	ReasonInvalidWeight    Reason = "invalid_weight"
	ReasonWeightOutOfRange Reason = "weight_out_of_range"
)

// Reasons lists every Reason, for documentation and tests.
var Reasons = []Reason{
	ReasonEmpty, ReasonMalformedJSON, ReasonMissingPictureID, ReasonInvalidPictureID,
	ReasonMissingWeight, ReasonInvalidWeight, ReasonWeightOutOfRange,
}

// Error is the error Decode returns for a record it rejects.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }

func reject(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of an error returned by Decode.
func ReasonOf(err error) (Reason, bool) {
	if e, ok := err.(*Error); ok { // Decode's own, without errors.As's allocation
		return e.Reason, true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return "", false
}

// Decode parses and validates one record value.
func Decode(data []byte) (Registration, error) {
	// Almost every record is exactly {"picture_id": "...", "weight": N}: a
	// small scanner handles that form without encoding/json's allocations,
	// and hands anything else to the general path. FuzzDecode checks that
	// both paths agree on every input the fast one accepts.
	if r, err, ok := decodeCommon(data, nil); ok {
		return r, err
	}
	return decodeGeneral(data)
}

// Decoder decodes records as Decode does, but returns the same string for a
// picture id it decoded recently instead of allocating one per record: on
// a stream where pictures recur, the hot path then allocates nothing, and
// the statistics that keep ids share one copy. A Decoder is for one
// goroutine at a time.
type Decoder struct {
	seed maphash.Seed
	// A 4-way set-associative cache of ids: bounded, as cheap as a miss
	// when ids never recur, and up to 4 hot ids that hash alike share a set
	// without evicting each other.
	sets [decoderSets][4]string
}

const decoderSets = 1024

// NewDecoder returns a Decoder with an empty cache.
func NewDecoder() *Decoder { return &Decoder{seed: maphash.MakeSeed()} }

// Decode parses and validates one record value, as the package's Decode.
func (d *Decoder) Decode(data []byte) (Registration, error) {
	if r, err, ok := decodeCommon(data, d); ok {
		return r, err
	}
	return decodeGeneral(data)
}

// id returns b as a string, from the cache if it is there.
func (d *Decoder) id(b []byte) string {
	if d == nil {
		return string(b)
	}
	set := &d.sets[maphash.Bytes(d.seed, b)%decoderSets]
	for _, s := range set {
		if s == string(b) { // compiled without a copy of b
			return s
		}
	}
	copy(set[1:], set[:3]) // the oldest leaves
	set[0] = string(b)
	return set[0]
}

// decodeGeneral parses any JSON value with encoding/json.
func decodeGeneral(data []byte) (Registration, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Registration{}, reject(ReasonEmpty, "record value is empty")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Registration{}, reject(ReasonMalformedJSON, "value is not a JSON object: %v", err)
	}
	if raw == nil { // the literal null
		return Registration{}, reject(ReasonMalformedJSON, "value is null, want a JSON object")
	}
	id, err := pictureID(raw["picture_id"])
	if err != nil {
		return Registration{}, err
	}
	w, err := weight(raw["weight"])
	if err != nil {
		return Registration{}, err
	}
	return Registration{PictureID: id, Weight: w}, nil
}

func pictureID(raw json.RawMessage) (string, error) {
	if raw == nil || string(raw) == "null" {
		return "", reject(ReasonMissingPictureID, "picture_id is missing or null")
	}
	if !utf8.Valid(raw) { // json.Unmarshal would silently replace bad bytes
		return "", reject(ReasonInvalidPictureID, "picture_id is not valid UTF-8")
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", reject(ReasonInvalidPictureID, "picture_id must be a string, got %s", abbreviate(raw))
	}
	if err := checkID(id); err != nil {
		return "", err
	}
	return id, nil
}

// checkID applies the rules for a picture_id once it is a decoded string.
func checkID(id string) error {
	switch {
	case id == "":
		return reject(ReasonInvalidPictureID, "picture_id is empty")
	case len(id) > MaxPictureIDLen:
		return reject(ReasonInvalidPictureID, "picture_id is %d bytes, at most %d allowed", len(id), MaxPictureIDLen)
	}
	if printableASCII(id) { // the common case, without decoding runes
		return nil
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return reject(ReasonInvalidPictureID, "picture_id contains the non-printable character %U", r)
		}
	}
	return nil
}

// printableASCII reports whether s is all printable ASCII (' ' to '~'),
// which unicode.IsPrint accepts too.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func weight(raw json.RawMessage) (int64, error) {
	if raw == nil || string(raw) == "null" {
		return 0, reject(ReasonMissingWeight, "weight is missing or null")
	}
	var n json.Number
	// json.Number also accepts a quoted number: a string is the wrong type here.
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, reject(ReasonInvalidWeight, "weight must be a number of grams, got %s", abbreviate(raw))
	}
	return parseWeight(raw)
}

// parseWeight applies the rules for a weight to a JSON number literal.
func parseWeight(raw []byte) (int64, error) {
	w, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		var numErr *strconv.NumError
		if errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) {
			return 0, reject(ReasonWeightOutOfRange, "weight %s is outside [1, %d] grams", abbreviate(raw), MaxWeightGrams)
		}
		return 0, reject(ReasonInvalidWeight, "weight must be an integer number of grams, got %s", abbreviate(raw))
	}
	if w < 1 || w > MaxWeightGrams {
		return 0, reject(ReasonWeightOutOfRange, "weight %d is outside [1, %d] grams", w, MaxWeightGrams)
	}
	return w, nil
}

// abbreviate keeps error details short however long the offending value is.
func abbreviate(raw json.RawMessage) string {
	const max = 40
	if len(raw) <= max {
		return string(raw)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + "…"
}

// Encode renders a registration as the JSON value the datafeed produces.
func Encode(r Registration) []byte {
	b, _ := json.Marshal(r) // a struct of a string and an int cannot fail
	return b
}
