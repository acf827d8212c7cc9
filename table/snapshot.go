package table

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A Snapshot is the message the input stage sends to the snapshots topic, keyed
// by statistic name: the aggregate of one statistic over the records of
// input partition Partition that fall in batch Batch (offsets
// [Batch·N, (Batch+1)·N)) up to offset Last. Final snapshots close the
// batch. Snapshots are deterministic: any owner of the partition, now or
// after a crash, forms the same aggregate for the same (Batch, Last).
type Snapshot struct {
	Partition int32
	Batch     int64
	// Prev is the batch this owner closed last before Batch (or, right after
	// it took the partition over, the batch before its first offset). The
	// table accepts a snapshot only when Prev is already closed, so batches
	// are merged in order, each exactly once, whoever sends them.
	Prev  int64
	Last  int64 // offset of the last record included
	Final bool
	Agg   []byte // the statistic's versioned encoding (stats.Kind.Encode)
}

const snapshotVersion = 1

// MarshalBinary encodes a snapshot for the loop topic.
func (s Snapshot) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 32+len(s.Agg))
	b = append(b, snapshotVersion)
	b = binary.AppendVarint(b, int64(s.Partition))
	b = binary.AppendVarint(b, s.Batch)
	b = binary.AppendVarint(b, s.Prev)
	b = binary.AppendVarint(b, s.Last)
	final := byte(0)
	if s.Final {
		final = 1
	}
	return append(append(b, final), s.Agg...), nil
}

var errBadSnapshot = errors.New("malformed snapshot")

// UnmarshalBinary decodes a message of the snapshots topic.
func (s *Snapshot) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != snapshotVersion {
		return fmt.Errorf("%w: want version %d", errBadSnapshot, snapshotVersion)
	}
	b = b[1:]
	var vals [4]int64
	for i := range vals {
		v, n := binary.Varint(b)
		if n <= 0 {
			return errBadSnapshot
		}
		vals[i], b = v, b[n:]
	}
	if len(b) == 0 || b[0] > 1 {
		return errBadSnapshot
	}
	*s = Snapshot{Partition: int32(vals[0]), Batch: vals[1], Prev: vals[2], Last: vals[3], Final: b[0] == 1, Agg: b[1:]}
	return nil
}
