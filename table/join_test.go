package table

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/picstats/picstats/stats"
)

func TestJoinRules(t *testing.T) {
	k, _ := stats.Lookup("count")
	part := func(p int32, closed int64, open ...int64) Part {
		pt := Part{Partition: p, ClosedThrough: closed}
		if closed != NoBatch {
			pt.Closed = aggOf(t, k, 0, (closed+1)*simBatch-1)
		}
		if len(open) == 2 {
			pt.Open = &OpenBatch{Batch: open[0], Last: open[1], Agg: aggOf(t, k, open[0]*simBatch, open[1])}
		}
		return pt
	}
	enc := func(parts ...Part) []byte {
		b, err := (&Value{Parts: parts}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name             string
		stored, incoming []byte
		want             []byte
		wantBehind       bool
	}{
		{"nothing stored", nil, enc(part(0, 1)), enc(part(0, 1)), false},
		{"a tombstone deletes", enc(part(0, 1)), nil, nil, false},
		{"more batches closed", enc(part(0, 1)), enc(part(0, 2)), enc(part(0, 2)), false},
		{"fewer batches closed", enc(part(0, 2)), enc(part(0, 1, 2, 23)), enc(part(0, 2)), true},
		{"a later open snapshot", enc(part(0, 1, 2, 23)), enc(part(0, 1, 2, 25)), enc(part(0, 1, 2, 25)), false},
		{"an earlier open snapshot", enc(part(0, 1, 2, 25)), enc(part(0, 1, 2, 23)), enc(part(0, 1, 2, 25)), true},
		{"an open snapshot against none", enc(part(0, 1)), enc(part(0, 1, 2, 21)), enc(part(0, 1, 2, 21)), false},
		{"none against an open snapshot", enc(part(0, 1, 2, 21)), enc(part(0, 1)), enc(part(0, 1, 2, 21)), true},
		{"the same value", enc(part(0, 1, 2, 21)), enc(part(0, 1, 2, 21)), enc(part(0, 1, 2, 21)), false},
		{"per partition: one ahead, one behind", enc(part(0, 3), part(1, 1)), enc(part(0, 2), part(1, 2)), enc(part(0, 3), part(1, 2)), true},
		{"a partition incoming has not seen", enc(part(0, 1), part(2, 0)), enc(part(1, 4)), enc(part(0, 1), part(1, 4), part(2, 0)), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, behind, err := Join(c.stored, c.incoming)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(c.want) || behind != c.wantBehind {
				t.Errorf("Join = %x, behind %v; want %x, behind %v", got, behind, c.want, c.wantBehind)
			}
		})
	}
	for _, bad := range [][2][]byte{{{9}, enc(part(0, 1))}, {enc(part(0, 1)), {ValueVersion, 2}}} {
		if _, _, err := Join(bad[0], bad[1]); err == nil {
			t.Errorf("Join(%x, %x) accepted a malformed value", bad[0], bad[1])
		}
	}
}

// tableOwner is one instance of the table stage owning the simulation's
// table partition: its own copy of the statistic's value and how far it has
// read the snapshots.
type tableOwner struct {
	value Value
	next  int // index of the next snapshot to apply
	stop  int // a paused old owner applies up to here: what it had fetched
}

// TestJoinKeepsTheChangelogExactUnderOldTableOwners simulates the table
// stage itself changing owners: a new owner recovers from the changelog and
// re-applies snapshots from the last committed one, while the old owner,
// paused past its session, wakes and applies the snapshots it had fetched
// to its old copy, writing after the new owner. A reader that keeps the
// Join of every write must stay exact for what it claims, never go back,
// and cover every record at the end; a reader that keeps the last write
// (goka's default) goes back in some histories, which shows the simulation
// reaches the case.
func TestJoinKeepsTheChangelogExactUnderOldTableOwners(t *testing.T) {
	const records = 300
	lastWriteWentBack := 0
	for _, name := range []string{"count", "average_weight", "min_weight"} {
		k, _ := stats.Lookup(name)
		for seed := range uint64(40) {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				log := simulateSnapshots(t, k, rng, records)
				var (
					joined, lastWrite []byte
					covered, lastCov  int64
					committed         int // snapshots the table stage has committed
					cur               = &tableOwner{stop: len(log)}
					olds              []*tableOwner
				)
				read := func(b []byte) *Value {
					var v Value
					if err := v.UnmarshalBinary(b); err != nil {
						t.Fatal(err)
					}
					return &v
				}
				// apply lets o apply its next snapshot and write its value,
				// which both readers read.
				apply := func(o *tableOwner) {
					s := log[o.next]
					o.next++
					if changed, err := o.value.Apply(k, s); err != nil || !changed {
						return
					}
					w, _ := o.value.MarshalBinary()
					var err error
					if joined, _, err = Join(joined, w); err != nil {
						t.Fatal(err)
					}
					c := audit(t, k, read(joined), 0)
					if c < covered {
						t.Fatalf("the joined value went back from %d to %d records", covered, c)
					}
					covered = c
					lastWrite = w
					if c := claimed(read(lastWrite)); c < lastCov {
						lastWriteWentBack++
					} else {
						lastCov = c
					}
				}
				for cur.next < len(log) {
					switch r := rng.IntN(100); {
					case r < 3 && joined != nil: // the owner pauses; a new one recovers
						cur.stop = min(len(log), cur.next+rng.IntN(5))
						olds = append(olds, cur)
						cur = &tableOwner{value: *read(joined), next: rng.IntN(committed + 1), stop: len(log)}
					case r < 25 && len(olds) > 0:
						if o := olds[rng.IntN(len(olds))]; o.next < o.stop {
							apply(o)
						}
					default:
						apply(cur)
						committed = max(committed, cur.next-rng.IntN(3))
					}
				}
				for _, o := range olds { // the old owners wake last
					for o.next < o.stop {
						apply(o)
					}
				}
				if covered != records {
					t.Fatalf("the joined value covers %d records at the end, want all %d", covered, records)
				}
			})
		}
	}
	if lastWriteWentBack == 0 {
		t.Error("no history made the last write go back: the simulation does not reach an old owner writing late")
	}
	t.Logf("the last write went back %d times", lastWriteWentBack)
}

// claimed is how many records of the simulation's one partition v claims to
// cover (audit checks that it does).
func claimed(v *Value) int64 {
	p := v.Parts[0]
	n := (p.ClosedThrough + 1) * simBatch
	if p.Open != nil {
		n += p.Open.Last - p.Open.Batch*simBatch + 1
	}
	return n
}
