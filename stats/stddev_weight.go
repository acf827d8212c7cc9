package stats

import (
	"encoding/binary"
	"math"
	"math/big"
	"math/bits"

	"github.com/picstats/picstats/internal/wire"
)

func init() {
	Register(Kind{
		Name:        "stddev_weight",
		Description: "Population standard deviation of the weights of the valid registrations so far, in grams.",
		Version:     1,
		New:         func() Stat { return new(StddevWeight) },
	})
}

// StddevWeight keeps exact integer moments: the count, the sum and the
// 128-bit sum of squares of the weights. Merging adds integers, so it is
// exact in any order (floating-point moment merges, even Chan et al.'s
// stable one, depend on the order by their last bits), and the variance
// n·Σx² − (Σx)² is computed exactly before its single rounding: no
// cancellation, however large the mean.
type StddevWeight struct {
	N      int64
	Sum    int64  // grams
	SqHigh uint64 // Σ weight², high 64 bits: weights ≤ 10⁶ g make each square < 2⁴⁰
	SqLow  uint64 // Σ weight², low 64 bits
}

var _ Stat = (*StddevWeight)(nil)

func (s *StddevWeight) Add(r *Record) {
	if !r.Valid() {
		return
	}
	w := uint64(r.Registration.Weight)
	s.N++
	s.Sum += r.Registration.Weight
	s.addSquares(0, w*w)
}

func (s *StddevWeight) addSquares(high, low uint64) {
	var carry uint64
	s.SqLow, carry = bits.Add64(s.SqLow, low, 0)
	s.SqHigh += high + carry
}

func (s *StddevWeight) Merge(other Stat) {
	o := other.(*StddevWeight)
	s.N += o.N
	s.Sum += o.Sum
	s.addSquares(o.SqHigh, o.SqLow)
}

// variance returns the population variance, rounded once.
func (s *StddevWeight) variance() float64 {
	n := big.NewInt(s.N)
	sq := new(big.Int).Lsh(new(big.Int).SetUint64(s.SqHigh), 64)
	sq.Or(sq, new(big.Int).SetUint64(s.SqLow))
	num := new(big.Int).Mul(n, sq)
	sum := big.NewInt(s.Sum)
	num.Sub(num, sum.Mul(sum, sum))
	v, _ := new(big.Rat).SetFrac(num, n.Mul(n, n)).Float64()
	return v
}

func (s *StddevWeight) Result() any {
	res := struct {
		Stddev        *float64 `json:"stddev_weight_grams"`
		Registrations int64    `json:"registrations"`
	}{Registrations: s.N}
	if s.N > 0 {
		sd := math.Sqrt(s.variance())
		res.Stddev = &sd
	}
	return res
}

func (s *StddevWeight) MarshalBinary() ([]byte, error) {
	b := binary.AppendVarint(binary.AppendVarint(nil, s.N), s.Sum)
	return binary.AppendUvarint(binary.AppendUvarint(b, s.SqHigh), s.SqLow), nil
}

func (s *StddevWeight) UnmarshalBinary(b []byte) error {
	r := wire.NewReader(b)
	s.N = r.Varint("count")
	s.Sum = r.Varint("sum")
	s.SqHigh = r.Uvarint("sum of squares, high")
	s.SqLow = r.Uvarint("sum of squares, low")
	return r.Done()
}
