package stats

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/axiomhq/hyperloglog"
)

// ExactDistinctLimit is how many distinct pictures distinct_pictures counts
// exactly (it keeps their 64-bit hashes); beyond, it estimates with a
// HyperLogLog of 2¹⁴ registers (16 KiB, relative standard error 0.81%).
const ExactDistinctLimit = 4096

// hllStandardError is 1.04/√2¹⁴, HyperLogLog's relative standard error.
const hllStandardError = 0.0081

func init() {
	Register(Kind{
		Name:        "distinct_pictures",
		Description: "Number of distinct pictures registered: exact up to 4096, then a HyperLogLog estimate (0.81% standard error).",
		Version:     1,
		New:         func() Stat { return &DistinctPictures{exact: map[uint64]struct{}{}} },
		Windows:     NoWindows, // an exact id set up to ExactDistinctLimit: too large to keep per window
	})
}

// DistinctPictures holds the idHash of every picture seen while there are
// at most ExactDistinctLimit of them, and then a HyperLogLog
// (github.com/axiomhq/hyperloglog, dense registers) of all of them. Which
// form a stream ends in depends only on its set of ids: a union of more than
// the limit becomes the HyperLogLog of every hash, and HyperLogLog merges
// by register maximum, so any split of the stream merges to the same state.
// The exact count is exact unless two ids share a 64-bit hash (for 4096
// ids, a chance below 10⁻¹²).
type DistinctPictures struct {
	exact map[uint64]struct{} // nil once hll is used
	hll   *hyperloglog.Sketch
}

var _ Stat = (*DistinctPictures)(nil)

func (d *DistinctPictures) Add(r *Record) {
	if r.Valid() {
		d.insert(idHash(r.Registration.PictureID))
	}
}

func (d *DistinctPictures) insert(h uint64) {
	if d.hll != nil {
		d.hll.InsertHash(h)
		return
	}
	d.exact[h] = struct{}{}
	if len(d.exact) > ExactDistinctLimit {
		d.hll = hyperloglog.NewNoSparse()
		for h := range d.exact {
			d.hll.InsertHash(h)
		}
		d.exact = nil
	}
}

func (d *DistinctPictures) Merge(other Stat) {
	o := other.(*DistinctPictures)
	if o.hll == nil {
		for h := range o.exact {
			d.insert(h)
		}
		return
	}
	if d.hll == nil {
		d.hll = o.hll.Clone()
		for h := range d.exact {
			d.hll.InsertHash(h)
		}
		d.exact = nil
		return
	}
	_ = d.hll.Merge(o.hll) // fails only for another precision
}

func (d *DistinctPictures) Result() any {
	res := struct {
		Distinct      uint64  `json:"distinct_pictures"`
		Exact         bool    `json:"exact"`
		StandardError float64 `json:"relative_standard_error"`
	}{Distinct: uint64(len(d.exact)), Exact: true}
	if d.hll != nil {
		res.Distinct, res.Exact, res.StandardError = d.hll.Estimate(), false, hllStandardError
	}
	return res
}

// The encoding is a form byte, then the sorted hashes (exact) or the
// library's dense encoding, which is its registers.
const (
	distinctExact byte = 0
	distinctHLL   byte = 1
)

func (d *DistinctPictures) MarshalBinary() ([]byte, error) {
	if d.hll != nil {
		return d.hll.AppendBinary([]byte{distinctHLL})
	}
	b := []byte{distinctExact}
	for _, h := range slices.Sorted(maps.Keys(d.exact)) {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b, nil
}

func (d *DistinctPictures) UnmarshalBinary(b []byte) error {
	*d = DistinctPictures{exact: map[uint64]struct{}{}}
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case distinctHLL:
		d.exact, d.hll = nil, hyperloglog.NewNoSparse()
		if err := d.hll.UnmarshalBinary(b[1:]); err != nil {
			return fmt.Errorf("hyperloglog: %w", err)
		}
		return nil
	case distinctExact:
		rest := b[1:]
		if len(rest)%8 != 0 {
			return fmt.Errorf("exact form: %d bytes is not a list of 64-bit hashes", len(rest))
		}
		for i := 0; i < len(rest); i += 8 {
			d.exact[binary.BigEndian.Uint64(rest[i:])] = struct{}{}
		}
		return nil
	default:
		return fmt.Errorf("unknown form %d", b[0])
	}
}
