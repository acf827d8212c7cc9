package stats

import (
	"encoding/binary"
	"fmt"
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
		New:         func() Stat { return new(PerMinute) },
		Windows:     NoWindows, // a window already: count@1m is its general form
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
	latest int64                // Unix minute of the latest registration; meaningful when seen
	seen   bool                 // any registration yet
	counts [WindowMinutes]int64 // registrations of minute m at m mod WindowMinutes, for the window's minutes
}

var _ Stat = (*PerMinute)(nil)

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 && s%60 != 0 {
		return s/60 - 1 // floor for timestamps before 1970
	}
	return s / 60
}

func slot(minute int64) int { return int(((minute % WindowMinutes) + WindowMinutes) % WindowMinutes) }

func (m *PerMinute) Add(r *Record) {
	if r.Valid() {
		m.add(unixMinute(r.Time), 1)
	}
}

func (m *PerMinute) add(minute, n int64) {
	if !m.seen || minute > m.latest {
		// Minutes after the old latest, up to the new one, start empty;
		// their slots held minutes that now leave the window.
		from := m.latest + 1
		if !m.seen || minute-from >= WindowMinutes {
			from = minute - WindowMinutes + 1
		}
		for old := from; old <= minute; old++ {
			m.counts[slot(old)] = 0
		}
		m.latest, m.seen = minute, true
	}
	if minute > m.latest-WindowMinutes {
		m.counts[slot(minute)] += n
	}
}

// count returns the registrations of a minute of the window.
func (m *PerMinute) count(minute int64) int64 { return m.counts[slot(minute)] }

func (m *PerMinute) Merge(other Stat) {
	o := other.(*PerMinute)
	if !o.seen {
		return
	}
	for minute := o.latest - WindowMinutes + 1; minute <= o.latest; minute++ {
		if n := o.count(minute); n > 0 {
			m.add(minute, n)
		}
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
	if !m.seen {
		return res
	}
	latest := time.Unix(m.latest*60, 0).UTC()
	res.Latest = &latest
	for minute := m.latest - WindowMinutes + 1; minute <= m.latest; minute++ {
		res.PerMinute = append(res.PerMinute, MinuteCount{time.Unix(minute*60, 0).UTC(), m.count(minute)})
	}
	return res
}

// The encoding is the latest minute, then (minutes before it, count)
// pairs of the non-empty minutes, from the latest down.
func (m *PerMinute) MarshalBinary() ([]byte, error) {
	if !m.seen {
		return nil, nil
	}
	b := binary.AppendVarint(nil, m.latest)
	for back := range int64(WindowMinutes) {
		if n := m.count(m.latest - back); n > 0 {
			b = binary.AppendVarint(binary.AppendUvarint(b, uint64(back)), n)
		}
	}
	return b, nil
}

func (m *PerMinute) UnmarshalBinary(b []byte) error {
	*m = PerMinute{}
	if len(b) == 0 {
		return nil
	}
	r := wire.NewReader(b)
	m.latest, m.seen = r.Varint("latest minute"), true
	for r.More() {
		back := r.Uvarint("minutes before the latest")
		n := r.Varint("registrations")
		if r.Err() == nil && (back >= WindowMinutes || n <= 0) {
			return fmt.Errorf("minute %d before the latest with %d registrations: outside the window or empty", back, n)
		}
		m.counts[slot(m.latest-int64(back))] = n
	}
	return r.Done()
}
