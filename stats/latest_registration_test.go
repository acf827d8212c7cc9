package stats

import (
	"testing"
	"time"
)

func TestLatestRegistration(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	at := func(id string, w int64, d time.Duration) Record {
		r := valid(id, w)
		r.Time = t0.Add(d)
		return r
	}
	type result struct {
		PictureID *string    `json:"picture_id"`
		Weight    *int64     `json:"weight_grams"`
		Time      *time.Time `json:"time"`
	}
	tests := []struct {
		name   string
		recs   []Record
		wantID string // "" for none
	}{
		{"nothing", nil, ""},
		{"only rejected", []Record{rejected("empty_value")}, ""},
		{"latest wins", []Record{at("b", 1, 2*time.Second), at("a", 2, time.Second)}, "b"},
		{"a tie goes to the larger id", []Record{at("a", 1, 0), at("c", 1, 0), at("b", 1, 0)}, "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resultAs[result](t, aggregate(t, "latest_registration", tt.recs))
			if tt.wantID == "" {
				if got.PictureID != nil {
					t.Fatalf("picture %q, want none", *got.PictureID)
				}
				return
			}
			if got.PictureID == nil || *got.PictureID != tt.wantID {
				t.Fatalf("picture %v, want %q", got.PictureID, tt.wantID)
			}
		})
	}
}
