// Package table holds the contract between picstats' two stages and the heart
// of its exactness argument: the Snapshot the input stage sends for a batch
// of an input partition, the Value the group table keeps per statistic, and
// the replace-then-merge rule (Value.Apply) that makes repeated and stale
// snapshots harmless. The processor writes these formats; the API reads
// them (Aggregate); neither needs the other.
package table

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/picstats/picstats/internal/wire"
	"github.com/picstats/picstats/stats"
)

// Value is the group table's value of one statistic: for every input
// partition, the merged aggregate of its closed batches and the latest
// snapshot of its open batch. The statistic's result is all of them merged.
type Value struct {
	Parts []Part // sorted by Partition
}

// Part is one input partition's share of a statistic.
type Part struct {
	Partition     int32
	ClosedThrough int64  // last batch merged into Closed; NoBatch if none
	Closed        []byte // merged aggregate of batches ≤ ClosedThrough (stats.Kind encoding; empty: nothing)
	Open          *OpenBatch
}

// OpenBatch is the latest snapshot of a batch that is not closed yet.
type OpenBatch struct {
	Batch int64
	Last  int64
	Agg   []byte
}

// NoBatch stands for "no batch" where a batch number is expected.
const NoBatch = -1

func (v *Value) part(p int32) *Part {
	i, found := slices.BinarySearchFunc(v.Parts, p, func(x Part, p int32) int { return int(x.Partition - p) })
	if !found {
		v.Parts = slices.Insert(v.Parts, i, Part{Partition: p, ClosedThrough: NoBatch})
	}
	return &v.Parts[i]
}

// Apply folds a snapshot into the value by the rule that makes results
// exact under replays, crashes and several owners of a partition:
//
//   - a snapshot of a batch that is closed already is ignored;
//   - a snapshot whose Prev is not closed yet is ignored (it skips a batch,
//     e.g. from an old owner still running ahead): batches close in order;
//   - a final snapshot merges its aggregate into Closed and clears an open
//     snapshot of that batch or an earlier one;
//   - an open snapshot replaces the open one if there is none, if it is of a
//     later batch, or if it is of the same batch and reaches a later offset.
//
// Every snapshot is deterministic in (Batch, Last), so a repeated or stale
// one changes nothing. Apply reports whether the value changed.
func (v *Value) Apply(k stats.Kind, s Snapshot) (bool, error) {
	o, err := v.ApplyOutcome(k, s)
	return o == Applied, err
}

// Outcome is what Apply did with a snapshot.
type Outcome int

const (
	Applied Outcome = iota // the value changed
	// IgnoredReplay: the snapshot's batch is closed already, or it repeats
	// the open snapshot (a replay after a crash, a retried send).
	IgnoredReplay
	// IgnoredStale: its Prev is not closed yet, or an open snapshot of a
	// later batch or offset is kept already: an old owner of the partition
	// running behind or ahead.
	IgnoredStale
)

// String is the outcome's metric label: applied, replay or stale_owner.
func (o Outcome) String() string {
	switch o {
	case IgnoredReplay:
		return "replay"
	case IgnoredStale:
		return "stale_owner"
	}
	return "applied"
}

// ApplyOutcome is Apply, saying why a snapshot that changes nothing is
// ignored.
func (v *Value) ApplyOutcome(k stats.Kind, s Snapshot) (Outcome, error) {
	return (*Decoded)(nil).Apply(v, k, s)
}

// Apply is v.ApplyOutcome(k, s), with the closed aggregate from d.
func (d *Decoded) Apply(v *Value, k stats.Kind, s Snapshot) (Outcome, error) {
	p := v.part(s.Partition)
	if p.ClosedThrough != NoBatch && s.Batch <= p.ClosedThrough {
		return IgnoredReplay, nil
	}
	if p.ClosedThrough != NoBatch && s.Prev > p.ClosedThrough {
		return IgnoredStale, nil
	}
	if !s.Final {
		if p.Open != nil && p.Open.Batch == s.Batch && p.Open.Last == s.Last {
			return IgnoredReplay, nil
		}
		if p.Open != nil && (p.Open.Batch > s.Batch || (p.Open.Batch == s.Batch && p.Open.Last > s.Last)) {
			return IgnoredStale, nil
		}
		p.Open = &OpenBatch{Batch: s.Batch, Last: s.Last, Agg: s.Agg}
		return Applied, nil
	}
	closed, err := d.take(k, p)
	if err != nil {
		return IgnoredReplay, err
	}
	batch, err := k.Decode(s.Agg)
	if err != nil {
		return IgnoredReplay, err
	}
	closed.Merge(batch)
	if p.Closed, err = k.Encode(closed); err != nil {
		return IgnoredReplay, err
	}
	d.put(k, p, closed)
	p.ClosedThrough = s.Batch
	if p.Open != nil && p.Open.Batch <= s.Batch {
		p.Open = nil
	}
	return Applied, nil
}

// Stat merges every partition's closed and open aggregates: the statistic
// over everything the table has seen.
func (v *Value) Stat(k stats.Kind) (stats.Stat, error) {
	return (*Decoded)(nil).Stat(v, k)
}

// Stat is v.Stat(k), with the closed aggregates from d.
func (d *Decoded) Stat(v *Value, k stats.Kind) (stats.Stat, error) {
	total := k.New()
	for i := range v.Parts {
		p := &v.Parts[i]
		closed, err := d.closed(k, p)
		if err != nil {
			return nil, err
		}
		total.Merge(closed)
		if p.Open != nil {
			open, err := k.Decode(p.Open.Agg)
			if err != nil {
				return nil, err
			}
			total.Merge(open)
		}
	}
	return total, nil
}

// Decoded keeps the decoded closed aggregate of each statistic and input
// partition, as the table stage last used it. A value's closed aggregates
// change only when a batch closes, yet every snapshot folded into it needs
// them all, decoded: for per-picture statistics that was most of the table
// stage's work. An entry serves only a part whose encoding equals the
// entry's, so a value written elsewhere meanwhile (another instance owned
// the table partition) is decoded afresh. Use one Decoded per process; a
// statistic's entries must be used by one goroutine at a time, as goka
// calls a table partition's callbacks.
type Decoded struct {
	mu sync.Mutex
	m  map[decodedKey]decoded
}

type decodedKey struct {
	stat string
	part int32
}

type decoded struct {
	enc []byte // a copy of the encoding agg was decoded from or encoded to
	agg stats.Stat
}

// take returns the closed aggregate of p, for the caller to change: the
// entry leaves d until put back. A nil d decodes.
func (d *Decoded) take(k stats.Kind, p *Part) (stats.Stat, error) {
	if d != nil {
		key := decodedKey{k.Name, p.Partition}
		d.mu.Lock()
		e, ok := d.m[key]
		delete(d.m, key)
		d.mu.Unlock()
		if ok && bytes.Equal(e.enc, p.Closed) {
			return e.agg, nil
		}
	}
	return k.Decode(p.Closed)
}

// closed returns the closed aggregate of p, to read only: d keeps it.
func (d *Decoded) closed(k stats.Kind, p *Part) (stats.Stat, error) {
	if d == nil {
		return k.Decode(p.Closed)
	}
	d.mu.Lock()
	e, ok := d.m[decodedKey{k.Name, p.Partition}]
	d.mu.Unlock()
	if ok && bytes.Equal(e.enc, p.Closed) {
		return e.agg, nil
	}
	agg, err := k.Decode(p.Closed)
	if err == nil {
		d.put(k, p, agg)
	}
	return agg, err
}

// put keeps agg as the decoded form of p.Closed, which it must equal.
func (d *Decoded) put(k stats.Kind, p *Part, agg stats.Stat) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[decodedKey]decoded{}
	}
	d.m[decodedKey{k.Name, p.Partition}] = decoded{bytes.Clone(p.Closed), agg}
}

// ValueVersion is the format version of an encoded Value.
const ValueVersion = 1

// MarshalBinary encodes the value for the table's changelog.
func (v *Value) MarshalBinary() ([]byte, error) {
	b := []byte{ValueVersion}
	b = binary.AppendUvarint(b, uint64(len(v.Parts)))
	for _, p := range v.Parts {
		b = binary.AppendVarint(b, int64(p.Partition))
		b = binary.AppendVarint(b, p.ClosedThrough)
		b = wire.AppendBytes(b, p.Closed)
		if p.Open == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		b = binary.AppendVarint(b, p.Open.Batch)
		b = binary.AppendVarint(b, p.Open.Last)
		b = wire.AppendBytes(b, p.Open.Agg)
	}
	return b, nil
}

var errBadValue = errors.New("malformed table value")

// UnmarshalBinary decodes a table value; empty data is an empty value.
func (v *Value) UnmarshalBinary(data []byte) error {
	*v = Value{}
	if len(data) == 0 {
		return nil
	}
	if data[0] != ValueVersion {
		return fmt.Errorf("%w: table format version %d, this build reads %d: %w", errBadValue, data[0], ValueVersion, stats.ErrVersion)
	}
	r := wire.NewReader(data[1:])
	n := r.Uvarint("partitions")
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		p := Part{Partition: int32(r.Varint("partition")), ClosedThrough: r.Varint("closed batch"), Closed: r.Bytes("closed aggregate")}
		if r.Byte("open flag") == 1 {
			p.Open = &OpenBatch{Batch: r.Varint("open batch"), Last: r.Varint("open offset"), Agg: r.Bytes("open aggregate")}
		}
		v.Parts = append(v.Parts, p)
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: %w", errBadValue, err)
	}
	return nil
}

// Aggregate decodes a value of the group table (as a goka View returns it,
// raw bytes; nil when the statistic has no value yet) into the aggregate of statistic k
// over everything the table has seen.
func Aggregate(k stats.Kind, value any) (stats.Stat, error) {
	var v Value
	if err := v.UnmarshalBinary(bytesOf(value)); err != nil {
		return nil, fmt.Errorf("table value of %s: %w", k.Name, err)
	}
	s, err := v.Stat(k)
	if err != nil {
		return nil, fmt.Errorf("table value of %s: %w", k.Name, err)
	}
	return s, nil
}

func bytesOf(msg any) []byte {
	b, _ := msg.([]byte) // a null value arrives as nil
	return b
}

// Join is how a reader of the group table's changelog — the API's View, or
// the table stage recovering its partitions — keeps a statistic's value: it
// returns what to keep when incoming arrives for a key whose kept value is
// stored, and whether incoming was behind stored for some input partition.
//
// The changelog is written by whichever instance owns the table partition,
// and ownership moves without fencing: an instance paused past its session
// (a SIGSTOP, a long GC, a frozen VM) still applies the snapshots it had
// fetched when it wakes, to its old copy of the value, and writes the result
// after the new owner's. Each part of such a write is exact for the offsets
// it claims (Apply is, from any earlier state), but may be behind. So the
// reader keeps, for every input partition, the part that has got further:
// more batches closed, or the same closed and a later open snapshot. Parts
// at the same position are identical (snapshots are deterministic), so the
// result does not depend on the order writes arrive in, and an old owner's
// write never takes a value back.
//
// A nil incoming value (a tombstone) is kept as nil: the key is deleted.
func Join(stored, incoming []byte) (keep []byte, behind bool, err error) {
	if len(stored) == 0 || incoming == nil {
		return incoming, false, nil
	}
	var s, in Value
	if err := s.UnmarshalBinary(stored); err != nil {
		return incoming, false, fmt.Errorf("stored %w", err)
	}
	if err := in.UnmarshalBinary(incoming); err != nil {
		return incoming, false, fmt.Errorf("incoming %w", err)
	}
	for _, sp := range s.Parts {
		i, found := slices.BinarySearchFunc(in.Parts, sp.Partition, func(x Part, p int32) int { return int(x.Partition - p) })
		switch {
		case !found: // incoming was written before this partition had news
			in.Parts = slices.Insert(in.Parts, i, sp)
			behind = true
		case sp.ahead(&in.Parts[i]):
			in.Parts[i] = sp
			behind = true
		}
	}
	if !behind {
		return incoming, false, nil
	}
	keep, err = in.MarshalBinary()
	return keep, true, err
}

// ahead reports whether p has got further than q: it has closed more
// batches, or as many and has a later open snapshot.
func (p *Part) ahead(q *Part) bool {
	switch {
	case p.ClosedThrough != q.ClosedThrough:
		return p.ClosedThrough > q.ClosedThrough
	case p.Open == nil || q.Open == nil:
		return p.Open != nil && q.Open == nil
	case p.Open.Batch != q.Open.Batch:
		return p.Open.Batch > q.Open.Batch
	}
	return p.Open.Last > q.Open.Last
}
