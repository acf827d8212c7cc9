package stats

import (
	"encoding/binary"
	"fmt"

	"github.com/picstats/picstats/internal/wire"
)

// Fixed buckets of the weight histogram: HistogramBuckets−1 buckets of
// HistogramBucketGrams each from 0 g, and one for everything heavier.
const (
	HistogramBucketGrams = 250
	HistogramBuckets     = 21 // 0–250 g, …, 4750–5000 g, and 5000 g or more
)

func init() {
	Register(Kind{
		Name:        "weight_histogram",
		Description: "Valid registrations by weight, in 250 g buckets up to 5000 g and one bucket for 5000 g or more.",
		Version:     1,
		New:         func() Stat { return new(WeightHistogram) },
	})
}

// WeightHistogram counts valid registrations per fixed weight bucket.
type WeightHistogram struct{ Counts [HistogramBuckets]int64 }

var _ Stat = (*WeightHistogram)(nil)

func (h *WeightHistogram) Add(r *Record) {
	if r.Valid() {
		h.Counts[min(r.Registration.Weight/HistogramBucketGrams, HistogramBuckets-1)]++
	}
}

func (h *WeightHistogram) Merge(other Stat) {
	for i, n := range other.(*WeightHistogram).Counts {
		h.Counts[i] += n
	}
}

// HistogramBucket is one bucket of the histogram's result: weights in
// [FromGrams, ToGrams), ToGrams null for the last, open bucket.
type HistogramBucket struct {
	FromGrams     int64  `json:"from_grams"`
	ToGrams       *int64 `json:"to_grams"`
	Registrations int64  `json:"registrations"`
}

func (h *WeightHistogram) Result() any {
	buckets := make([]HistogramBucket, HistogramBuckets)
	for i, n := range h.Counts {
		buckets[i] = HistogramBucket{FromGrams: int64(i) * HistogramBucketGrams, Registrations: n}
		if i < HistogramBuckets-1 {
			to := int64(i+1) * HistogramBucketGrams
			buckets[i].ToGrams = &to
		}
	}
	return struct {
		Buckets []HistogramBucket `json:"buckets"`
	}{buckets}
}

func (h *WeightHistogram) MarshalBinary() ([]byte, error) {
	var b []byte
	for _, n := range h.Counts {
		b = binary.AppendVarint(b, n)
	}
	return b, nil
}

func (h *WeightHistogram) UnmarshalBinary(b []byte) error {
	r := wire.NewReader(b)
	for i := range h.Counts {
		h.Counts[i] = r.Varint(fmt.Sprintf("bucket %d", i))
	}
	return r.Done()
}
