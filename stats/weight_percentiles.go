package stats

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/picstats/picstats/internal/wire"
)

// PercentileRelativeError bounds the error of the weight percentiles: each
// reported percentile is within this fraction of the true weight at that
// rank (DDSketch's guarantee for its relative accuracy).
const PercentileRelativeError = 0.01

func init() {
	Register(Kind{
		Name:        "weight_percentiles",
		Description: "Median, 90th and 99th percentile of the weights of the valid registrations, in grams, within 1% relative error.",
		Version:     1,
		New:         func() Stat { return newWeightPercentiles() },
		Windows:     []Window{Hour, Day}, // a sketch of about 0.5 KB: too much once per minute
	})
}

// WeightPercentiles is a DDSketch (github.com/DataDog/sketches-go) of the
// weights: logarithmic buckets whose width is 2% of their value, each with
// an integer count. Merging adds counts, so it is exact and order-free, and
// the sketch of a stream is the same however it was split. Weights from 1 g
// to codec.MaxWeightGrams fall in at most about 700 buckets.
//
// The encoding is picstats' own, (bucket index, count) pairs in index
// order, rather than the library's, so that equal sketches always give
// equal bytes.
type WeightPercentiles struct{ sketch *ddsketch.DDSketch }

var _ Stat = (*WeightPercentiles)(nil)

func newWeightPercentiles() *WeightPercentiles {
	s, err := ddsketch.NewDefaultDDSketch(PercentileRelativeError)
	if err != nil {
		panic(err) // only for an accuracy outside (0, 1)
	}
	return &WeightPercentiles{s}
}

// bucketOf memoises the sketch's bucket index of the weights below 8 kg,
// where most registrations are: it spares the logarithm the sketch takes
// per value (about 55 → 20 ns per record).
var bucketOf = func() []int32 {
	m := newWeightPercentiles().sketch.IndexMapping
	idx := make([]int32, 8192)
	for w := 1; w < len(idx); w++ {
		idx[w] = int32(m.Index(float64(w)))
	}
	return idx
}()

func (p *WeightPercentiles) Add(r *Record) {
	if !r.Valid() {
		return
	}
	if w := r.Registration.Weight; w < int64(len(bucketOf)) {
		p.sketch.GetPositiveValueStore().Add(int(bucketOf[w])) // what sketch.Add does for w ≥ 1
		return
	}
	_ = p.sketch.Add(float64(r.Registration.Weight)) // fails only for values it cannot index; weights are 1 to 10⁶
}

func (p *WeightPercentiles) Merge(other Stat) {
	_ = p.sketch.MergeWith(other.(*WeightPercentiles).sketch) // fails only for sketches of another accuracy
}

func (p *WeightPercentiles) Result() any {
	res := struct {
		P50           *float64 `json:"p50_weight_grams"`
		P90           *float64 `json:"p90_weight_grams"`
		P99           *float64 `json:"p99_weight_grams"`
		RelativeError float64  `json:"relative_error"`
		Registrations int64    `json:"registrations"`
	}{RelativeError: PercentileRelativeError, Registrations: int64(p.sketch.GetCount())}
	if !p.sketch.IsEmpty() {
		qs, _ := p.sketch.GetValuesAtQuantiles([]float64{0.5, 0.9, 0.99})
		for i, dst := range []**float64{&res.P50, &res.P90, &res.P99} {
			v := math.Round(qs[i]*10) / 10 // 0.1 g: far below the error bound
			*dst = &v
		}
	}
	return res
}

func (p *WeightPercentiles) MarshalBinary() ([]byte, error) {
	var b []byte
	prev := 0
	p.sketch.GetPositiveValueStore().ForEach(func(index int, count float64) bool {
		b = binary.AppendVarint(b, int64(index-prev)) // ForEach goes up the indexes
		b = binary.AppendUvarint(b, uint64(count))
		prev = index
		return false
	})
	return b, nil
}

func (p *WeightPercentiles) UnmarshalBinary(b []byte) error {
	*p = *newWeightPercentiles()
	r := wire.NewReader(b)
	index := 0
	for r.More() {
		index += int(r.Varint("bucket index"))
		count := r.Uvarint("bucket count")
		if r.Err() == nil && count == 0 {
			return fmt.Errorf("bucket %d: empty buckets are not stored", index)
		}
		p.sketch.GetPositiveValueStore().AddWithCount(index, float64(count))
	}
	return r.Done()
}
