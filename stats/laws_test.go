package stats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/picstats/picstats/codec"
)

// randomStream makes n records: mostly valid, some rejected, with a few
// picture ids and timestamps spread over two hours.
func randomStream(rng *rand.Rand, n int) []Record {
	start := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	recs := make([]Record, n)
	for i := range recs {
		recs[i].Time = start.Add(time.Duration(rng.Int64N(int64(2 * time.Hour))))
		if rng.IntN(10) == 0 {
			recs[i].Rejected = codec.Reasons[rng.IntN(len(codec.Reasons))]
			continue
		}
		recs[i].Registration = codec.Registration{
			PictureID: fmt.Sprintf("%012d", rng.IntN(150)),
			Weight:    1 + rng.Int64N(codec.MaxWeightGrams),
		}
	}
	return recs
}

// wideStream makes n valid records whose picture ids are nearly all
// distinct, to cross the bounds of the statistics that bound their memory.
func wideStream(rng *rand.Rand, n int) []Record {
	recs := randomStream(rng, n)
	for i := range recs {
		if recs[i].Valid() {
			recs[i].Registration.PictureID = fmt.Sprintf("wide-%d", rng.IntN(1e9))
		}
	}
	return recs
}

func onePass(k Kind, recs []Record) Stat {
	s := k.New()
	for _, r := range recs {
		s.Add(&r)
	}
	return s
}

func mustEncode(t *testing.T, k Kind, s Stat) []byte {
	t.Helper()
	b, err := k.Encode(s)
	if err != nil {
		t.Fatalf("%s: %v", k.Name, err)
	}
	return b
}

// roundTrip encodes and decodes s, as the engine does between batches.
func roundTrip(t *testing.T, k Kind, s Stat) Stat {
	t.Helper()
	back, err := k.Decode(mustEncode(t, k, s))
	if err != nil {
		t.Fatalf("%s: decode: %v", k.Name, err)
	}
	return back
}

func resultJSON(t *testing.T, s Stat) string {
	t.Helper()
	b, err := json.Marshal(s.Result())
	if err != nil {
		t.Fatalf("result is not JSON-encodable: %v", err)
	}
	return string(b)
}

// assertSame fails unless two aggregates are indistinguishable: the same
// bytes and the same result.
func assertSame(t *testing.T, k Kind, what string, got, want Stat) {
	t.Helper()
	if g, w := mustEncode(t, k, got), mustEncode(t, k, want); !bytes.Equal(g, w) {
		t.Fatalf("%s: %s: encoding %x, want %x", k.Name, what, g, w)
	}
	if g, w := resultJSON(t, got), resultJSON(t, want); g != w {
		t.Fatalf("%s: %s: result %s, want %s", k.Name, what, g, w)
	}
}

// splitMerge assigns each record to one of a random number of batches
// (contiguous runs or scattered, at random), aggregates each batch, and
// merges the batch aggregates in a random order through encode/decode.
func splitMerge(t *testing.T, k Kind, rng *rand.Rand, recs []Record) Stat {
	batches := make([][]Record, 1+rng.IntN(8))
	contiguous := rng.IntN(2) == 0
	for i, r := range recs {
		b := rng.IntN(len(batches))
		if contiguous {
			b = i * len(batches) / len(recs)
		}
		batches[b] = append(batches[b], r)
	}
	parts := make([]Stat, len(batches))
	for i, b := range batches {
		parts[i] = roundTrip(t, k, onePass(k, b))
	}
	rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
	for len(parts) > 1 { // merge random neighbours: any grouping must do
		i := rng.IntN(len(parts) - 1)
		parts[i].Merge(parts[i+1])
		parts[i] = roundTrip(t, k, parts[i])
		parts = append(parts[:i+1], parts[i+2:]...)
	}
	return parts[0]
}

// lawKinds are every registered statistic and its windowed forms: those it
// declares, and minutes kept for 10 minutes, whose eviction the two hours of
// randomStream exercise on every merge.
func lawKinds(t *testing.T) []Kind {
	var ks []Kind
	for _, k := range All() {
		ks = append(ks, k)
		for _, w := range append(slices.Clone(k.WindowSizes()), Window{Size: time.Minute, Retention: 10 * time.Minute}) {
			wk, err := k.Windowed(w)
			if err != nil {
				t.Fatal(err)
			}
			ks = append(ks, wk)
		}
	}
	return ks
}

// TestLaws checks the Stat contract for every registered statistic and its
// windowed forms: a new statistic is tested by merely existing.
func TestLaws(t *testing.T) {
	if len(All()) == 0 {
		t.Fatal("no statistics registered")
	}
	for _, k := range lawKinds(t) {
		t.Run(k.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(k.Name))))
			for round := range 50 {
				recs := randomStream(rng, 1+rng.IntN(400))
				if round%10 == 9 { // 3,000 to 7,000 ids: across MaxTrackedPictures and ExactDistinctLimit
					recs = wideStream(rng, 3000+rng.IntN(4000))
				}
				whole := onePass(k, recs)

				assertSame(t, k, "same input twice", onePass(k, recs), whole)
				assertSame(t, k, fmt.Sprintf("round %d: merged random split", round), splitMerge(t, k, rng, recs), whole)
				assertSame(t, k, "encode/decode", roundTrip(t, k, whole), whole)

				withEmpty := onePass(k, recs)
				withEmpty.Merge(k.New())
				assertSame(t, k, "x ⊕ empty", withEmpty, whole)
				emptyWith := k.New()
				emptyWith.Merge(onePass(k, recs))
				assertSame(t, k, "empty ⊕ x", emptyWith, whole)
			}
			assertSame(t, k, "decode of no data", roundTrip(t, k, k.New()), k.New())
			if s, err := k.Decode(nil); err != nil || s == nil {
				t.Fatalf("Decode(nil) = %v, %v; want an empty aggregate", s, err)
			}
		})
	}
}

// TestMergeDoesNotAlias checks that Merge copies what it needs from other:
// changing other afterwards must not change the merged aggregate.
func TestMergeDoesNotAlias(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, k := range lawKinds(t) {
		t.Run(k.Name, func(t *testing.T) {
			a, b := randomStream(rng, 200), randomStream(rng, 200)
			merged := onePass(k, a)
			other := onePass(k, b)
			merged.Merge(other)
			before := mustEncode(t, k, merged)
			for _, r := range randomStream(rng, 200) {
				other.Add(&r)
			}
			if after := mustEncode(t, k, merged); !bytes.Equal(before, after) {
				t.Fatalf("adding to other after Merge changed the merged aggregate")
			}
		})
	}
}

func TestDecodeRefusesOtherVersion(t *testing.T) {
	for _, k := range lawKinds(t) {
		t.Run(k.Name, func(t *testing.T) {
			b := mustEncode(t, k, onePass(k, randomStream(rand.New(rand.NewPCG(3, 3)), 50)))
			b[0]++
			if _, err := k.Decode(b); !errors.Is(err, ErrVersion) {
				t.Errorf("Decode of a version %d encoding: err = %v, want ErrVersion", b[0], err)
			}
		})
	}
}
