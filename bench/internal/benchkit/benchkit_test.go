package benchkit

import (
	"math"
	"os"
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{0: 1, .5: 5, .9: 9, .99: 10, 1: 10} {
		if got := Rank(s, q); got != want {
			t.Errorf("Rank(%v) = %v, want %v", q, got, want)
		}
	}
	if Rank([]int(nil), .5) != 0 {
		t.Error("Rank of nothing is not zero")
	}
	nan := math.NaN()
	for _, in := range [][]float64{{3, 1, 2}, {4, 1, 3, 2}, {nan, 5, 2}, {nan, 5, 1, 2}} {
		if got := Median(in); got != 2 {
			t.Errorf("Median(%v) = %v, want 2", in, got)
		}
	}
	if !math.IsNaN(Median([]float64{nan})) {
		t.Error("the median of nothing is a number")
	}
}

func TestMarkerFindsTextSplitAcrossWrites(t *testing.T) {
	start, m := time.Now(), NewMarker("processor ready")
	_, _ = m.Write([]byte("level=INFO msg=\"processor starting\"\nlevel=INFO msg=\"processor re"))
	if !math.IsNaN(m.Since(start)) {
		t.Fatal("matched before the text was complete")
	}
	_, _ = m.Write([]byte("a"))
	_, _ = m.Write([]byte("dy: table recovered\"\n"))
	if s := m.Since(start); math.IsNaN(s) || s < 0 {
		t.Fatalf("Since = %v after the text was written", s)
	}
	if !math.IsNaN((*Marker)(nil).Since(start)) {
		t.Error("a nil marker reported a time")
	}
}

func TestReadProcOfSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	if err != nil || !s.OK || s.CPU < 0 || s.RSSKB <= 0 || s.Threads < 1 || s.FDs < 1 || ClockTick <= 0 {
		t.Fatalf("ReadProc(self) = %+v, %v (ClockTick %d)", s, err, ClockTick)
	}
}
