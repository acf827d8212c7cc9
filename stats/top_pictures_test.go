package stats

import (
	"fmt"
	"testing"
)

type topResult struct {
	ByRegistrations []RankedPicture `json:"by_registrations"`
	ByAverage       []RankedPicture `json:"by_average_weight"`
	Exact           bool            `json:"exact"`
}

func ids(ranked []RankedPicture) []string {
	out := make([]string, len(ranked))
	for i, r := range ranked {
		out[i] = r.PictureID
	}
	return out
}

func TestTopPictures(t *testing.T) {
	// p<i> has i registrations of i·10 g; heavy has two averaging 500 g;
	// tie-a and tie-b have one of 120 g each, p12's average.
	var recs []Record
	for i := 1; i <= 12; i++ {
		for range i {
			recs = append(recs, valid(fmt.Sprintf("p%02d", i), int64(i*10)))
		}
	}
	recs = append(recs, valid("heavy", 999), valid("heavy", 1), valid("tie-b", 120), valid("tie-a", 120))
	res := resultAs[topResult](t, aggregate(t, "top_pictures", recs))

	if got, want := fmt.Sprint(ids(res.ByRegistrations)), "[p12 p11 p10 p09 p08 p07 p06 p05 p04 p03]"; got != want {
		t.Errorf("by registrations %s, want %s", got, want)
	}
	// Averages: heavy 500, p12 and both ties 120 (ties by id), p11 110, …
	if got, want := fmt.Sprint(ids(res.ByAverage)), "[heavy p12 tie-a tie-b p11 p10 p09 p08 p07 p06]"; got != want {
		t.Errorf("by average weight %s, want %s", got, want)
	}
	if top := res.ByRegistrations[0]; top.Registrations != 12 || top.Average != 120 {
		t.Errorf("first by registrations %+v, want 12 registrations of 120 g", top)
	}
	if !res.Exact {
		t.Error("exact = false with every picture tracked")
	}
}

func TestTopPicturesSayWhenTheyRankASample(t *testing.T) {
	var recs []Record
	for i := range MaxTrackedPictures + 1 {
		recs = append(recs, valid(fmt.Sprintf("id-%d", i), 100))
	}
	if res := resultAs[topResult](t, aggregate(t, "top_pictures", recs)); res.Exact || len(res.ByRegistrations) != TopN {
		t.Fatalf("exact %v with %d listed; want false and %d", res.Exact, len(res.ByRegistrations), TopN)
	}
}
