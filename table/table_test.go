package table

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
)

const simBatch = 10

func simWeight(offset int64) int64 { return 1 + offset%97 }

// aggOf is the aggregate of statistic k over the offsets [from, to] of one
// partition in the simulation.
func aggOf(t *testing.T, k stats.Kind, from, to int64) []byte {
	s := k.New()
	rec := &stats.Record{Registration: codec.Registration{PictureID: "p"}}
	for o := from; o <= to; o++ {
		rec.Registration.Weight = simWeight(o)
		s.Add(rec)
	}
	b, err := k.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// audit checks that a value is exactly the aggregate of the offsets it
// claims: every batch up to ClosedThrough (from the first batch start) and
// the open batch up to Last.
func audit(t *testing.T, k stats.Kind, v *Value, firstBatch int64) int64 {
	t.Helper()
	if len(v.Parts) != 1 {
		t.Fatalf("value has %d partitions, want 1", len(v.Parts))
	}
	p := v.Parts[0]
	want := k.New()
	covered := int64(0)
	if p.ClosedThrough != NoBatch {
		s, _ := k.Decode(aggOf(t, k, firstBatch*simBatch, (p.ClosedThrough+1)*simBatch-1))
		want.Merge(s)
		covered += (p.ClosedThrough + 1 - firstBatch) * simBatch
	}
	if p.Open != nil {
		s, _ := k.Decode(aggOf(t, k, p.Open.Batch*simBatch, p.Open.Last))
		want.Merge(s)
		covered += p.Open.Last - p.Open.Batch*simBatch + 1
	}
	got, err := v.Stat(k)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := k.Encode(got)
	w, _ := k.Encode(want)
	if string(g) != string(w) {
		t.Fatalf("value %+v is not the aggregate of the offsets it claims", p)
	}
	return covered
}

// owner simulates one processor instance owning the partition: it reads
// from the committed offset, snapshots its open batch now and then, closes
// batches with final snapshots, and commits a batch boundary once the final
// snapshot is acknowledged. Its sent snapshots travel in order (per
// producer), but interleave arbitrarily with other owners' at the table.
type owner struct {
	next, batch, prev int64
	agg               stats.Stat
	sent              []Snapshot
}

func newOwner(k stats.Kind, committed int64) *owner {
	return &owner{next: committed, batch: NoBatch, prev: committed/simBatch - 1, agg: k.New()}
}

func (o *owner) snapshot(t *testing.T, k stats.Kind, final bool) {
	b, err := k.Encode(o.agg)
	if err != nil {
		t.Fatal(err)
	}
	o.sent = append(o.sent, Snapshot{Batch: o.batch, Prev: o.prev, Last: o.next - 1, Final: final, Agg: b})
}

func (o *owner) step(t *testing.T, k stats.Kind, rng *rand.Rand) {
	b := o.next / simBatch
	if o.batch != NoBatch && b != o.batch {
		o.snapshot(t, k, true)
		o.prev, o.agg = o.batch, k.New()
	}
	o.batch = b
	o.agg.Add(&stats.Record{Registration: codec.Registration{PictureID: "p", Weight: simWeight(o.next)}})
	o.next++
	if rng.IntN(4) == 0 {
		o.snapshot(t, k, false)
	}
}

// simulateSnapshots returns the snapshots of one input partition of
// records offsets in the order the table stage receives them, from a random
// history of input-stage crashes (some unsent snapshots lost, the rest
// delivered late) and old owners still sending, with commits of the batch
// boundaries whose final snapshots the current owner has delivered.
func simulateSnapshots(t *testing.T, k stats.Kind, rng *rand.Rand, records int64) []Snapshot {
	var (
		delivered []Snapshot
		committed int64
		owners    = []*owner{newOwner(k, 0)}
	)
	deliver := func(o *owner, current bool) {
		s := o.sent[0]
		o.sent = o.sent[1:]
		delivered = append(delivered, s)
		// Acknowledged: the current owner commits the boundary.
		if s.Final && current {
			committed = max(committed, (s.Batch+1)*simBatch)
		}
	}
	for cur := owners[0]; cur.next < records; {
		switch r := rng.IntN(100); {
		case r < 2: // crash: some unsent snapshots are lost, the rest linger
			cur.sent = cur.sent[:rng.IntN(len(cur.sent)+1)]
			cur = newOwner(k, committed)
			owners = append(owners, cur)
		case r < 40:
			o := owners[rng.IntN(len(owners))]
			if len(o.sent) > 0 {
				deliver(o, o == cur)
			}
		default:
			cur.step(t, k, rng)
		}
	}
	// The periodic snapshot after the last record, then everything still
	// in flight, in random order: stale snapshots must not undo it.
	cur := owners[len(owners)-1]
	cur.snapshot(t, k, false)
	for pending := true; pending; {
		pending = false
		for _, i := range rng.Perm(len(owners)) {
			if o := owners[i]; len(o.sent) > 0 {
				deliver(o, o == cur)
				pending = true
			}
		}
	}
	return delivered
}

// TestApplyIsExactUnderCrashesAndStaleOwners runs many random histories of
// crashes, lost and delayed snapshots and old owners still sending, and
// audits the table value after every applied snapshot.
func TestApplyIsExactUnderCrashesAndStaleOwners(t *testing.T) {
	for _, name := range []string{"count", "average_weight", "min_weight"} {
		k, _ := stats.Lookup(name)
		for seed := range uint64(200) {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				const records = 300
				var v Value
				for _, s := range simulateSnapshots(t, k, rand.New(rand.NewPCG(seed, 99)), records) {
					if _, err := v.Apply(k, s); err != nil {
						t.Fatal(err)
					}
					audit(t, k, &v, 0)
				}
				if covered := audit(t, k, &v, 0); covered != records {
					t.Fatalf("the table covers %d records at the end, want all %d", covered, records)
				}
			})
		}
	}
}

func TestApplyRules(t *testing.T) {
	k, _ := stats.Lookup("count")
	agg := func(n int) []byte {
		s := k.New()
		for range n {
			s.Add(&stats.Record{Registration: codec.Registration{PictureID: "p", Weight: 1}})
		}
		b, _ := k.Encode(s)
		return b
	}
	steps := []struct {
		name        string
		snap        Snapshot
		wantChanged bool
		wantCount   int64
	}{
		{"first open snapshot", Snapshot{Batch: 0, Prev: -1, Last: 4, Agg: agg(5)}, true, 5},
		{"older offset of the same batch is stale", Snapshot{Batch: 0, Prev: -1, Last: 2, Agg: agg(3)}, false, 5},
		{"repeat is stale", Snapshot{Batch: 0, Prev: -1, Last: 4, Agg: agg(5)}, false, 5},
		{"later offset replaces", Snapshot{Batch: 0, Prev: -1, Last: 7, Agg: agg(8)}, true, 8},
		{"final closes the batch", Snapshot{Batch: 0, Prev: -1, Last: 9, Final: true, Agg: agg(10)}, true, 10},
		{"replayed final is ignored", Snapshot{Batch: 0, Prev: -1, Last: 9, Final: true, Agg: agg(10)}, false, 10},
		{"open of a closed batch is ignored", Snapshot{Batch: 0, Prev: -1, Last: 9, Agg: agg(10)}, false, 10},
		{"a batch that skips one is ignored", Snapshot{Batch: 2, Prev: 1, Last: 21, Agg: agg(2)}, false, 10},
		{"next batch opens", Snapshot{Batch: 1, Prev: 0, Last: 12, Agg: agg(3)}, true, 13},
		{"final of the skipping batch still ignored", Snapshot{Batch: 2, Prev: 1, Last: 29, Final: true, Agg: agg(10)}, false, 13},
		{"final of batch 1", Snapshot{Batch: 1, Prev: 0, Last: 19, Final: true, Agg: agg(10)}, true, 20},
		{"batch 3 after an empty batch 2 (a gap in offsets)", Snapshot{Batch: 3, Prev: 1, Last: 35, Final: true, Agg: agg(4)}, true, 24},
	}
	var v Value
	for _, st := range steps {
		changed, err := v.Apply(k, st.snap)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := v.Stat(k)
		if got := s.(*stats.Count).N; changed != st.wantChanged || got != st.wantCount {
			t.Fatalf("%s: changed=%v count=%d, want changed=%v count=%d", st.name, changed, got, st.wantChanged, st.wantCount)
		}
		b, _ := v.MarshalBinary()
		var back Value
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		b2, _ := back.MarshalBinary()
		if string(b) != string(b2) {
			t.Fatalf("%s: encoding does not round-trip", st.name)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, s := range []Snapshot{
		{Partition: 3, Batch: 7, Prev: 6, Last: 7999, Final: true, Agg: []byte{1, 2, 3}},
		{Partition: 0, Batch: 0, Prev: -1, Last: 0, Agg: []byte{1}},
	} {
		b, _ := s.MarshalBinary()
		var back Snapshot
		if err := back.UnmarshalBinary(b); err != nil || fmt.Sprint(back) != fmt.Sprint(s) {
			t.Fatalf("round trip of %+v gave %+v, %v", s, back, err)
		}
	}
	var s Snapshot
	for _, bad := range [][]byte{nil, {9}, {snapshotVersion, 1}} {
		if err := s.UnmarshalBinary(bad); err == nil {
			t.Errorf("decoded malformed snapshot %v", bad)
		}
	}
}

func TestMalformedValuesFail(t *testing.T) {
	for _, bad := range [][]byte{
		{ValueVersion, 2},                // two partitions announced, none there
		{ValueVersion, 1, 0, 1, 5, 1, 2}, // closed aggregate shorter than its length
		{ValueVersion, 0, 7},             // trailing bytes
	} {
		var v Value
		if err := v.UnmarshalBinary(bad); !errors.Is(err, errBadValue) {
			t.Errorf("UnmarshalBinary(%v) = %v, want errBadValue", bad, err)
		}
	}
}

// TestApplyOutcomeSaysWhy checks the reasons the processor's
// picstats_table_snapshots_ignored_total counts.
func TestApplyOutcomeSaysWhy(t *testing.T) {
	k, _ := stats.Lookup("count")
	var v Value
	steps := []struct {
		name string
		snap Snapshot
		want Outcome
	}{
		{"first open snapshot", Snapshot{Batch: 0, Prev: NoBatch, Last: 4, Agg: aggOf(t, k, 0, 5)}, Applied},
		{"the same open snapshot again", Snapshot{Batch: 0, Prev: NoBatch, Last: 4, Agg: aggOf(t, k, 0, 5)}, IgnoredReplay},
		{"an older open snapshot", Snapshot{Batch: 0, Prev: NoBatch, Last: 2, Agg: aggOf(t, k, 0, 3)}, IgnoredStale},
		{"final", Snapshot{Batch: 0, Prev: NoBatch, Last: 9, Final: true, Agg: aggOf(t, k, 0, 10)}, Applied},
		{"final again", Snapshot{Batch: 0, Prev: NoBatch, Last: 9, Final: true, Agg: aggOf(t, k, 0, 10)}, IgnoredReplay},
		{"skips batch 1", Snapshot{Batch: 2, Prev: 1, Last: 24, Agg: aggOf(t, k, 20, 25)}, IgnoredStale},
		{"batch 1", Snapshot{Batch: 1, Prev: 0, Last: 12, Agg: aggOf(t, k, 10, 13)}, Applied},
	}
	for _, s := range steps {
		got, err := v.ApplyOutcome(k, s.snap)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: %v, want %v", s.name, got, s.want)
		}
	}
}

// TestDecodedAgreesWithDecoding applies two histories of snapshots of one
// statistic and input partition (as two owners of the table partition
// would have written, one after the other) through one Decoded, turn
// about, so that its entry is stale half the time; every value and its
// statistic must equal those that decoding everything gives.
func TestDecodedAgreesWithDecoding(t *testing.T) {
	for _, name := range []string{"count", "pictures", "weight_percentiles"} {
		k, _ := stats.Lookup(name)
		t.Run(name, func(t *testing.T) {
			var d Decoded
			histories := [][]Snapshot{
				simulateSnapshots(t, k, rand.New(rand.NewPCG(1, 2)), 300),
				simulateSnapshots(t, k, rand.New(rand.NewPCG(3, 4)), 300),
			}
			var cached, plain [2]Value
			for step := 0; len(histories[0])+len(histories[1]) > 0; step++ {
				h := step % 2
				if len(histories[h]) == 0 {
					continue
				}
				s := histories[h][0]
				histories[h] = histories[h][1:]
				got, err := d.Apply(&cached[h], k, s)
				if err != nil {
					t.Fatal(err)
				}
				want, err := plain[h].ApplyOutcome(k, s)
				if err != nil {
					t.Fatal(err)
				}
				gs, err := d.Stat(&cached[h], k)
				if err != nil {
					t.Fatal(err)
				}
				ws, err := plain[h].Stat(k)
				if err != nil {
					t.Fatal(err)
				}
				gv, _ := cached[h].MarshalBinary()
				wv, _ := plain[h].MarshalBinary()
				ge, _ := k.Encode(gs)
				we, _ := k.Encode(ws)
				if got != want || string(gv) != string(wv) || string(ge) != string(we) {
					t.Fatalf("step %d: with Decoded %v, without %v; values or statistics differ", step, got, want)
				}
			}
		})
	}
}
