package stats

import (
	"encoding/binary"
	"maps"
	"slices"
	"time"

	"github.com/picstats/picstats/internal/wire"
)

// WindowMinutes is how many minutes registrations_per_minute keeps.
const WindowMinutes = 60

func init() {
	Register(Kind{
		Name:        "registrations_per_minute",
		Description: "Valid registrations per minute of record timestamp (event time), for the 60 minutes up to the latest timestamp seen.",
		Version:     1,
		New:         func() Stat { return &PerMinute{counts: map[int64]int64{}} },
	})
}

// PerMinute counts valid registrations per UTC minute of their record
// timestamp (event time, not the time picstats reads them).
//
// Eviction rule: the window is the WindowMinutes minutes ending with the
// latest minute of any registration seen; counts of older minutes are
// dropped, and a registration older than the window is not counted. The
// result therefore depends only on the set of records, never on their order
// or on the clock: with latest minute L over the whole stream, every part
// of a split kept every minute after its own latest − WindowMinutes, which
// includes every minute after L − WindowMinutes. A timestamp far in the
// future moves the window there, as it would in any event-time window.
type PerMinute struct {
	latest int64           // Unix minute; meaningful when counts is not empty
	counts map[int64]int64 // Unix minute → registrations, all within the window
}

var _ Stat = (*PerMinute)(nil)

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 && s%60 != 0 {
		return s/60 - 1 // floor for timestamps before 1970
	}
	return s / 60
}

func (m *PerMinute) Add(r Record) {
	if r.Valid() {
		m.add(unixMinute(r.Time), 1)
	}
}

func (m *PerMinute) add(minute, n int64) {
	if len(m.counts) == 0 || minute > m.latest {
		m.latest = minute
		for old := range m.counts {
			if old <= minute-WindowMinutes {
				delete(m.counts, old)
			}
		}
	}
	if minute > m.latest-WindowMinutes {
		m.counts[minute] += n
	}
}

func (m *PerMinute) Merge(other Stat) {
	for minute, n := range other.(*PerMinute).counts {
		m.add(minute, n)
	}
}

// MinuteCount is the registrations of one minute.
type MinuteCount struct {
	Minute        time.Time `json:"minute"`
	Registrations int64     `json:"registrations"`
}

func (m *PerMinute) Result() any {
	res := struct {
		WindowMinutes int           `json:"window_minutes"`
		Latest        *time.Time    `json:"latest_minute"`
		PerMinute     []MinuteCount `json:"per_minute"` // oldest first, every minute of the window
	}{WindowMinutes: WindowMinutes, PerMinute: []MinuteCount{}}
	if len(m.counts) == 0 {
		return res
	}
	latest := time.Unix(m.latest*60, 0).UTC()
	res.Latest = &latest
	for minute := m.latest - WindowMinutes + 1; minute <= m.latest; minute++ {
		res.PerMinute = append(res.PerMinute, MinuteCount{time.Unix(minute*60, 0).UTC(), m.counts[minute]})
	}
	return res
}

// The encoding is the latest minute, then (minutes before it, count) pairs
// from the latest down.
func (m *PerMinute) MarshalBinary() ([]byte, error) {
	if len(m.counts) == 0 {
		return nil, nil
	}
	b := binary.AppendVarint(nil, m.latest)
	for _, minute := range slices.Backward(slices.Sorted(maps.Keys(m.counts))) {
		b = binary.AppendVarint(binary.AppendUvarint(b, uint64(m.latest-minute)), m.counts[minute])
	}
	return b, nil
}

func (m *PerMinute) UnmarshalBinary(b []byte) error {
	m.counts = map[int64]int64{}
	if len(b) == 0 {
		return nil
	}
	r := wire.NewReader(b)
	m.latest = r.Varint("latest minute")
	for r.More() {
		m.counts[m.latest-int64(r.Uvarint("minutes before the latest"))] = r.Varint("registrations")
	}
	return r.Done()
}
