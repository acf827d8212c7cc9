package stats

import (
	"cmp"
	"encoding/binary"
	"strings"
	"time"

	"github.com/picstats/picstats/internal/wire"
)

func init() {
	Register(Kind{
		Name:        "latest_registration",
		Description: "The valid registration with the latest record timestamp: picture, weight in grams, time.",
		Version:     1,
		New:         func() Stat { return new(LatestRegistration) },
	})
}

// LatestRegistration keeps the valid registration with the latest
// timestamp. Ties are broken by picture id, then weight, so that the
// result never depends on the order in which records or batches arrive.
type LatestRegistration struct {
	Seen      bool
	UnixMilli int64 // Kafka timestamps have millisecond precision
	PictureID string
	Weight    int64
}

var _ Stat = (*LatestRegistration)(nil)

// later reports whether o comes after l in the order above.
func (l *LatestRegistration) later(o LatestRegistration) bool {
	if !o.Seen || !l.Seen {
		return o.Seen
	}
	return cmp.Or(cmp.Compare(o.UnixMilli, l.UnixMilli), strings.Compare(o.PictureID, l.PictureID), cmp.Compare(o.Weight, l.Weight)) > 0
}

func (l *LatestRegistration) Add(r *Record) {
	if !r.Valid() {
		return
	}
	o := LatestRegistration{true, r.Time.UnixMilli(), r.Registration.PictureID, r.Registration.Weight}
	if l.later(o) {
		*l = o
	}
}

func (l *LatestRegistration) Merge(other Stat) {
	if o := other.(*LatestRegistration); l.later(*o) {
		*l = *o
	}
}

func (l *LatestRegistration) Result() any {
	res := struct {
		PictureID *string    `json:"picture_id"`
		Weight    *int64     `json:"weight_grams"`
		Time      *time.Time `json:"time"`
	}{}
	if l.Seen {
		t := time.UnixMilli(l.UnixMilli).UTC()
		res.PictureID, res.Weight, res.Time = &l.PictureID, &l.Weight, &t
	}
	return res
}

func (l *LatestRegistration) MarshalBinary() ([]byte, error) {
	if !l.Seen {
		return nil, nil // nothing seen: no bytes
	}
	b := binary.AppendVarint(nil, l.UnixMilli)
	return binary.AppendVarint(wire.AppendString(b, l.PictureID), l.Weight), nil
}

func (l *LatestRegistration) UnmarshalBinary(b []byte) error {
	*l = LatestRegistration{Seen: len(b) > 0}
	if !l.Seen {
		return nil
	}
	r := wire.NewReader(b)
	l.UnixMilli = r.Varint("timestamp")
	l.PictureID = r.String("picture id")
	l.Weight = r.Varint("weight")
	return r.Done()
}
