package stats

import (
	"encoding/binary"

	"github.com/picstats/picstats/internal/wire"

	"maps"
	"slices"

	"github.com/picstats/picstats/codec"
)

func init() {
	Register(Kind{
		Name:        "rejected",
		Description: "Records rejected as invalid so far, in total and by reason.",
		Version:     1,
		New:         func() Stat { return &Rejected{ByReason: map[codec.Reason]int64{}} },
	})
}

// Rejected counts rejected records by reason. Reasons come from the codec, a
// small fixed set, so the map stays tiny.
type Rejected struct{ ByReason map[codec.Reason]int64 }

var _ Stat = (*Rejected)(nil)

func (r *Rejected) Add(rec *Record) {
	if !rec.Valid() {
		r.ByReason[rec.Rejected]++
	}
}

func (r *Rejected) Merge(other Stat) {
	for reason, n := range other.(*Rejected).ByReason {
		r.ByReason[reason] += n
	}
}

func (r *Rejected) Result() any {
	res := struct {
		Total    int64                  `json:"rejected"`
		ByReason map[codec.Reason]int64 `json:"by_reason"`
	}{ByReason: maps.Clone(r.ByReason)}
	for _, n := range r.ByReason {
		res.Total += n
	}
	return res
}

func (r *Rejected) MarshalBinary() ([]byte, error) {
	var b []byte
	for _, reason := range slices.Sorted(maps.Keys(r.ByReason)) { // sorted: deterministic bytes
		b = binary.AppendVarint(wire.AppendString(b, string(reason)), r.ByReason[reason])
	}
	return b, nil
}

func (r *Rejected) UnmarshalBinary(b []byte) error {
	rd := wire.NewReader(b)
	r.ByReason = map[codec.Reason]int64{}
	for rd.More() {
		reason := codec.Reason(rd.String("reason"))
		r.ByReason[reason] = rd.Varint("reason count")
	}
	return rd.Done()
}
