package stats

import (
	"encoding/binary"

	"github.com/picstats/picstats/internal/wire"
)

func init() {
	Register(Kind{
		Name:        "count",
		Description: "Total number of valid registrations so far.",
		Version:     1,
		New:         func() Stat { return new(Count) },
	})
}

// Count counts valid registrations.
type Count struct{ N int64 }

var _ Stat = (*Count)(nil)

func (c *Count) Add(r *Record) {
	if r.Valid() {
		c.N++
	}
}

func (c *Count) Merge(other Stat) { c.N += other.(*Count).N }

func (c *Count) Result() any {
	return struct {
		Registrations int64 `json:"registrations"`
	}{c.N}
}

func (c *Count) MarshalBinary() ([]byte, error) { return binary.AppendVarint(nil, c.N), nil }

func (c *Count) UnmarshalBinary(b []byte) error {
	r := wire.NewReader(b)
	c.N = r.Varint("count")
	return r.Done()
}
