package benchkit

import (
	"bytes"
	"math"
	"os"
	"testing"
	"time"
)

func TestPercentileIsNearestRank(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{0: 1, .5: 5, .9: 9, .99: 10, 1: 10} {
		if got := Rank(s, q); got != want {
			t.Errorf("Rank(%v) = %v, want %v", q, got, want)
		}
	}
	if Rank([]int(nil), .5) != 0 {
		t.Error("Rank of nothing is not zero")
	}
	for _, tt := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2},
		{[]float64{math.NaN(), 5, 1}, 1},
		{[]float64{math.NaN(), 5, 1, 3}, 3},
	} {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if !math.IsNaN(Median([]float64{math.NaN()})) {
		t.Error("the median of nothing is a number")
	}
}

func TestMarkerFindsLineSplitAcrossWrites(t *testing.T) {
	start := time.Now()
	m := NewMarker("processor ready")
	_, _ = m.Write([]byte("level=INFO msg=\"processor starting\"\nlevel=INFO msg=\"processor re"))
	if !math.IsNaN(m.Since(start)) {
		t.Fatal("matched before the text was complete")
	}
	_, _ = m.Write([]byte("ady: table recovered\"\n"))
	if s := m.Since(start); math.IsNaN(s) || s < 0 {
		t.Fatalf("Since = %v after the text was written", s)
	}
	var none *Marker
	if !math.IsNaN(none.Since(start)) {
		t.Error("a nil marker reported a time")
	}
}

func TestTableAligns(t *testing.T) {
	tb := NewTable("contender", "records/s", "result")
	tb.LeftFrom = 2
	tb.Row("bare", 12, "exact")
	tb.Row("picstats", F(1234.5, 0), "FAILED (x)")
	var b bytes.Buffer
	tb.Print(&b)
	want := "contender  records/s  result\n" +
		"bare              12  exact\n" +
		"picstats        1234  FAILED (x)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestReadProcOfSelf(t *testing.T) {
	if ClockTick <= 0 {
		t.Fatalf("ClockTick %d", ClockTick)
	}
	s, err := ReadProc(os.Getpid())
	if err != nil || !s.OK || s.RSSKB <= 0 || s.Threads < 1 || s.FDs < 1 {
		t.Fatalf("ReadProc(self) = %+v, %v", s, err)
	}
}
