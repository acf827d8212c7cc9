package stats

import "testing"

func TestWeightHistogramBuckets(t *testing.T) {
	recs := []Record{valid("a", 1), valid("a", 249), valid("a", 250), valid("a", 4999), valid("a", 5000), valid("a", 1_000_000), rejected("empty_value")}
	res := resultAs[struct {
		Buckets []HistogramBucket `json:"buckets"`
	}](t, aggregate(t, "weight_histogram", recs))
	if len(res.Buckets) != HistogramBuckets {
		t.Fatalf("%d buckets, want %d", len(res.Buckets), HistogramBuckets)
	}
	want := map[int]int64{0: 2, 1: 1, 19: 1, 20: 2}
	for i, b := range res.Buckets {
		if b.Registrations != want[i] {
			t.Errorf("bucket %d [%d, %v) has %d, want %d", i, b.FromGrams, b.ToGrams, b.Registrations, want[i])
		}
		if b.FromGrams != int64(i)*HistogramBucketGrams {
			t.Errorf("bucket %d starts at %d g", i, b.FromGrams)
		}
	}
	if last := res.Buckets[HistogramBuckets-1]; last.ToGrams != nil {
		t.Errorf("the last bucket ends at %d g, want open (null)", *last.ToGrams)
	}
	if b := res.Buckets[3]; b.ToGrams == nil || *b.ToGrams != 1000 {
		t.Errorf("bucket 3 ends at %v, want 1000 g", b.ToGrams)
	}
}
