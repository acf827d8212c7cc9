package stats

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/picstats/picstats/internal/wire"
)

// Window is a size of tumbling event-time windows — aligned to the Unix
// epoch, so in UTC a minute, an hour or a day starts where a clock says —
// and how far behind the newest record's window the windows are kept.
type Window struct {
	Size      time.Duration
	Retention time.Duration // a multiple of Size; Retention/Size windows are kept
}

// The window sizes every statistic gets unless it declares others (Kind.Windows),
// with their default retentions.
var (
	Minute = Window{Size: time.Minute, Retention: 2 * time.Hour}
	Hour   = Window{Size: time.Hour, Retention: 48 * time.Hour}
	Day    = Window{Size: 24 * time.Hour, Retention: 35 * 24 * time.Hour}
)

// DefaultWindows are Minute, Hour and Day.
var DefaultWindows = []Window{Minute, Hour, Day}

// Label names the window size in a windowed statistic's name: "1m", "1h",
// "1d", else seconds ("90s").
func (w Window) Label() string {
	switch {
	case w.Size%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", w.Size/(24*time.Hour))
	case w.Size%time.Hour == 0:
		return fmt.Sprintf("%dh", w.Size/time.Hour)
	case w.Size%time.Minute == 0:
		return fmt.Sprintf("%dm", w.Size/time.Minute)
	}
	return fmt.Sprintf("%ds", w.Size/time.Second)
}

func (w Window) validate() error {
	if w.Size < time.Second || w.Size%time.Second != 0 {
		return fmt.Errorf("window size %v: want whole seconds, at least 1s", w.Size)
	}
	if w.Retention < w.Size || w.Retention%w.Size != 0 {
		return fmt.Errorf("window retention %v: want a multiple of the window size %v", w.Retention, w.Size)
	}
	return nil
}

// Windowed returns the statistic k over tumbling windows w, a Kind of its own
// named k.Name + "@" + w.Label() (e.g. "average_weight@1h"). Its aggregate
// (Windows) keeps one aggregate of k per window, and it obeys the Stat
// contract whenever k does, so the engine carries it like any statistic.
func (k Kind) Windowed(w Window) (Kind, error) {
	if err := w.validate(); err != nil {
		return Kind{}, fmt.Errorf("%s: %w", k.Name, err)
	}
	return Kind{
		Name:        k.Name + "@" + w.Label(),
		Description: fmt.Sprintf("%s Per %s window of record timestamp, the last %v.", k.Description, w.Label(), w.Retention),
		Version:     k.Version, // the window framing is this file's; a change to it needs a new name
		New:         func() Stat { return newWindows(k, w) },
	}, nil
}

// Windows is the aggregate of a windowed statistic: one aggregate of the
// inner statistic per window that holds records, for the windows kept.
//
// Eviction, and what "late" counts: with L the newest record timestamp
// folded in, the windows kept are those that start after the start of L's
// window minus the retention; every record of an older window is counted as
// late instead (it came after its window was evicted, or its window has
// been evicted since). The kept windows and the late count are therefore a
// function of the set of records, never of their order or of the clock:
// Merge evicts by the newer of the two L, exactly as one pass would have.
// A timestamp far in the future evicts every window before it, as in any
// event-time window.
type Windows struct {
	inner      Kind
	size, keep int64 // milliseconds: window size, retention
	latest     int64 // newest record timestamp (ms); noRecord before the first
	late       int64
	wins       []window // by start
}

type window struct {
	start, n int64 // start (ms since the epoch), records folded in
	agg      Stat
}

const noRecord = math.MinInt64

var _ Stat = (*Windows)(nil)

func newWindows(k Kind, w Window) *Windows {
	return &Windows{inner: k, size: w.Size.Milliseconds(), keep: w.Retention.Milliseconds(), latest: noRecord}
}

// cutoff is the start of the oldest window kept.
func (w *Windows) cutoff() int64 {
	if w.latest == noRecord {
		return noRecord
	}
	return w.startOf(w.latest) - w.keep + w.size
}

func (w *Windows) startOf(ms int64) int64 { return floor(ms, w.size) }

func (w *Windows) evict() {
	c, i := w.cutoff(), 0
	for i < len(w.wins) && w.wins[i].start < c {
		w.late += w.wins[i].n
		i++
	}
	w.wins = w.wins[i:]
}

func (w *Windows) Add(r *Record) {
	t := r.Time.UnixMilli()
	if x := w.note(t, t, 1); x != nil {
		x.agg.Add(r)
	}
}

// addRun folds in agg, the aggregate of n records that all fall in the
// window of start, the newest at latest (ms), as adding those records one
// by one would: the kept windows and the late count are a function of the
// set of records. It does not keep agg. (stats.Set feeds windows so.)
func (w *Windows) addRun(start, latest, n int64, agg Stat) {
	if x := w.note(start, latest, n); x != nil {
		x.agg.Merge(agg)
	}
}

// note counts n records of the window of t, the newest at latest (ms), and
// returns that window for their aggregate, or nil if it is not kept (they
// are late).
func (w *Windows) note(t, latest, n int64) *window {
	if latest > w.latest {
		w.latest = latest
		w.evict()
	}
	start := w.startOf(t)
	if start < w.cutoff() {
		w.late += n
		return nil
	}
	i := len(w.wins) - 1 // records come mostly in time order: try the newest window first
	if i < 0 || w.wins[i].start != start {
		var found bool
		if i, found = slices.BinarySearchFunc(w.wins, start, func(x window, s int64) int { return cmpInt(x.start, s) }); !found {
			w.wins = slices.Insert(w.wins, i, window{start: start, agg: w.inner.New()})
		}
	}
	w.wins[i].n += n
	return &w.wins[i]
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (w *Windows) Merge(other Stat) {
	o := other.(*Windows)
	merged := make([]window, 0, len(w.wins)+len(o.wins))
	i, j := 0, 0
	for i < len(w.wins) || j < len(o.wins) {
		switch {
		case j == len(o.wins) || (i < len(w.wins) && w.wins[i].start < o.wins[j].start):
			merged = append(merged, w.wins[i])
			i++
		case i == len(w.wins) || o.wins[j].start < w.wins[i].start:
			cp := window{start: o.wins[j].start, n: o.wins[j].n, agg: w.inner.New()}
			cp.agg.Merge(o.wins[j].agg) // a copy: Merge must not keep other's state
			merged = append(merged, cp)
			j++
		default:
			w.wins[i].agg.Merge(o.wins[j].agg)
			w.wins[i].n += o.wins[j].n
			merged = append(merged, w.wins[i])
			i, j = i+1, j+1
		}
	}
	w.wins = merged
	w.late += o.late
	w.latest = max(w.latest, o.latest)
	w.evict()
}

// WindowResult is one window's result.
type WindowResult struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Records int64     `json:"records"` // valid and rejected, with timestamps in the window
	Result  any       `json:"result"`  // the statistic over the window's records
}

// WindowsResult is a windowed statistic's result: every window kept that
// holds records, oldest first.
type WindowsResult struct {
	WindowSeconds    int64          `json:"window_seconds"`
	RetentionSeconds int64          `json:"retention_seconds"`
	Newest           *time.Time     `json:"newest_record_time"` // null before any record
	Late             int64          `json:"late"`               // records older than every window kept
	Windows          []WindowResult `json:"windows"`
}

func (w *Windows) Result() any {
	res := WindowsResult{WindowSeconds: w.size / 1000, RetentionSeconds: w.keep / 1000, Late: w.late, Windows: []WindowResult{}}
	if w.latest != noRecord {
		t := time.UnixMilli(w.latest).UTC()
		res.Newest = &t
	}
	for _, start := range w.Starts() {
		r, _ := w.At(start)
		res.Windows = append(res.Windows, r)
	}
	return res
}

func (w *Windows) MarshalBinary() ([]byte, error) {
	b := binary.AppendVarint(nil, w.latest)
	b = binary.AppendUvarint(b, uint64(w.late))
	b = binary.AppendUvarint(b, uint64(len(w.wins)))
	for _, x := range w.wins {
		agg, err := x.agg.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("window %d: %w", x.start, err)
		}
		b = binary.AppendVarint(b, x.start)
		b = binary.AppendUvarint(b, uint64(x.n))
		b = wire.AppendBytes(b, agg)
	}
	return b, nil
}

func (w *Windows) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data)
	w.latest = r.Varint("newest record time")
	w.late = int64(r.Uvarint("late records"))
	n := r.Uvarint("windows")
	w.wins = nil
	for i := uint64(0); i < n && r.Err() == nil; i++ {
		x := window{start: r.Varint("window start"), n: int64(r.Uvarint("window records")), agg: w.inner.New()}
		payload := r.Bytes("window aggregate")
		if r.Err() != nil {
			break
		}
		if err := x.agg.UnmarshalBinary(payload); err != nil {
			return fmt.Errorf("window %d: %w", x.start, err)
		}
		if len(w.wins) > 0 && x.start <= w.wins[len(w.wins)-1].start {
			return fmt.Errorf("window %d after window %d: windows out of order", x.start, w.wins[len(w.wins)-1].start)
		}
		w.wins = append(w.wins, x)
	}
	return r.Done()
}

// Newest is the timestamp of the newest record folded in; false before any.
func (w *Windows) Newest() (time.Time, bool) {
	return time.UnixMilli(w.latest).UTC(), w.latest != noRecord
}

// Oldest is the start of the oldest window kept (whether it holds records
// or not); false before any record.
func (w *Windows) Oldest() (time.Time, bool) {
	return time.UnixMilli(w.cutoff()).UTC(), w.latest != noRecord
}

// Over returns the statistic over the windows that start in [from, to),
// merged, and how many records they hold.
func (w *Windows) Over(from, to time.Time) (Stat, int64) {
	total, n := w.inner.New(), int64(0)
	f, t := from.UnixMilli(), to.UnixMilli()
	for _, x := range w.wins {
		if x.start >= f && x.start < t {
			total.Merge(x.agg)
			n += x.n
		}
	}
	return total, n
}

// Window is the size and retention of the windows.
func (w *Windows) Window() Window {
	return Window{Size: time.Duration(w.size) * time.Millisecond, Retention: time.Duration(w.keep) * time.Millisecond}
}

// Starts returns the starts of the windows kept that hold records, oldest
// first.
func (w *Windows) Starts() []time.Time {
	starts := make([]time.Time, len(w.wins))
	for i, x := range w.wins {
		starts[i] = time.UnixMilli(x.start).UTC()
	}
	return starts
}

// At returns the result of the window that starts at start, if it is kept
// and holds records.
func (w *Windows) At(start time.Time) (WindowResult, bool) {
	s := start.UnixMilli()
	i, found := slices.BinarySearchFunc(w.wins, s, func(x window, s int64) int { return cmpInt(x.start, s) })
	if !found {
		return WindowResult{}, false
	}
	x := w.wins[i]
	return WindowResult{Start: time.UnixMilli(x.start).UTC(), End: time.UnixMilli(x.start + w.size).UTC(), Records: x.n, Result: x.agg.Result()}, true
}
