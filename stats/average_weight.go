package stats

import (
	"encoding/binary"

	"github.com/picstats/picstats/internal/wire"
)

func init() {
	Register(Kind{
		Name:        "average_weight",
		Description: "Mean weight of the valid registrations so far, in grams.",
		Version:     1,
		New:         func() Stat { return new(AverageWeight) },
	})
}

// AverageWeight keeps the exact integer sum and count, so the mean is exact
// whatever the order in which batches are merged.
type AverageWeight struct {
	N   int64
	Sum int64 // grams; codec.MaxWeightGrams keeps it far from overflow
}

var _ Stat = (*AverageWeight)(nil)

func (a *AverageWeight) Add(r *Record) {
	if r.Valid() {
		a.N++
		a.Sum += r.Registration.Weight
	}
}

func (a *AverageWeight) Merge(other Stat) {
	o := other.(*AverageWeight)
	a.N += o.N
	a.Sum += o.Sum
}

func (a *AverageWeight) Result() any {
	res := struct {
		Average       *float64 `json:"average_weight_grams"`
		TotalWeight   int64    `json:"total_weight_grams"`
		Registrations int64    `json:"registrations"`
	}{TotalWeight: a.Sum, Registrations: a.N}
	if a.N > 0 {
		avg := float64(a.Sum) / float64(a.N)
		res.Average = &avg
	}
	return res
}

func (a *AverageWeight) MarshalBinary() ([]byte, error) {
	return binary.AppendVarint(binary.AppendVarint(nil, a.N), a.Sum), nil
}

func (a *AverageWeight) UnmarshalBinary(b []byte) error {
	r := wire.NewReader(b)
	a.N = r.Varint("count")
	a.Sum = r.Varint("sum")
	return r.Done()
}
