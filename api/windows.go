package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// WithWindows makes the server answer time ranges and window lists of its
// statistics from their windowed forms in the table (stats.WindowedKinds;
// the processors must keep the same). They are served on request only:
// neither /api/stats nor the websocket carries them.
func WithWindows(kinds []stats.Kind) Option {
	return func(s *Server) {
		s.windowed = map[string][]windowedKind{}
		for _, k := range kinds {
			base, _, _ := strings.Cut(k.Name, "@")
			s.windowed[base] = append(s.windowed[base], windowedKind{k, k.New().(*stats.Windows).Window()})
		}
	}
}

// windowedKind is a windowed statistic with its window.
type windowedKind struct {
	kind stats.Kind
	w    stats.Window
}

// windowLabels are the window sizes a statistic is kept over, smallest first.
func (s *Server) windowLabels(name string) []string {
	labels := []string{}
	for _, wk := range s.windowed[name] {
		labels = append(labels, wk.w.Label())
	}
	return labels
}

// windowsOf reads statistic name's windowed value of wk from the table.
func windowsOf(t Table, wk windowedKind) (*stats.Windows, error) {
	v, err := t.Get(wk.kind.Name)
	if err != nil {
		return nil, fmt.Errorf("read %s from the table: %w", wk.kind.Name, err)
	}
	agg, err := table.Aggregate(wk.kind, v)
	if err != nil {
		return nil, err
	}
	return agg.(*stats.Windows), nil
}

// RangeResult is the answer to a time range: the statistic over the
// windows that start in [From, To).
type RangeResult struct {
	Statistic     string    `json:"statistic"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	WindowSeconds int64     `json:"window_seconds"` // the window size the range was answered from
	Records       int64     `json:"records"`        // valid and rejected records in the range
	Result        any       `json:"result"`
}

// timeArg is a from or to argument: RFC 3339, or relative to now (-1h).
type timeArg struct {
	t        time.Time
	relative bool
}

func parseTimeArg(name, v string, now time.Time) (timeArg, error) {
	if strings.HasPrefix(v, "-") {
		d, err := time.ParseDuration(v)
		if err != nil {
			return timeArg{}, fmt.Errorf("%s=%s: a relative time is a negative duration such as -1h or -90m", name, v)
		}
		return timeArg{now.Add(d), true}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return timeArg{}, fmt.Errorf("%s=%s: want an RFC 3339 time (2026-12-03T10:00:00Z) or a relative one (-1h)", name, v)
	}
	return timeArg{t, false}, nil
}

// aligned returns a on the window grid of size: a relative time is
// rounded down to it, an absolute one must lie on it.
func (a timeArg) aligned(size time.Duration) (time.Time, bool) {
	ms, sz := a.t.UnixMilli(), size.Milliseconds()
	start := ms / sz * sz
	if start > ms {
		start -= sz
	}
	return time.UnixMilli(start).UTC(), a.relative || start == ms
}

// answer is a JSON body with its status: what a time range or a window list
// answers, over REST and on the websocket alike.
type answer struct {
	status int
	body   any
}

func (a answer) write(w http.ResponseWriter) { writeJSON(w, a.status, a.body) }

// windowsError is the answer to a time range or window list that cannot be
// served: it says what can.
func (s *Server) windowsError(t Table, name, msg string) answer {
	type possible struct {
		Window           string     `json:"window"`
		RetentionSeconds int64      `json:"retention_seconds"`
		Oldest           *time.Time `json:"oldest_window_start"` // null before any record
	}
	var list []possible
	for _, wk := range s.windowed[name] {
		p := possible{Window: wk.w.Label(), RetentionSeconds: int64(wk.w.Retention / time.Second)}
		if ws, err := windowsOf(t, wk); err == nil {
			if oldest, ok := ws.Oldest(); ok {
				p.Oldest = &oldest
			}
		}
		list = append(list, p)
	}
	return answer{http.StatusBadRequest, map[string]any{"error": msg, "windows": list}}
}

func badRequest(msg string) answer {
	return answer{http.StatusBadRequest, map[string]string{"error": msg}}
}

// rangeArgs checks a time range's arguments; now resolves relative times.
func (s *Server) rangeArgs(name string, q url.Values, now time.Time) (from, to timeArg, err error) {
	if len(s.windowed[name]) == 0 {
		return from, to, fmt.Errorf("statistic %q is not kept over windows: it has no time ranges (see /api/statistics)", name)
	}
	if !q.Has("from") {
		return from, to, errors.New("a time range needs from= (RFC 3339 such as 2026-12-03T10:00:00Z, or relative such as -1h); to= is optional (default: now)")
	}
	if from, err = parseTimeArg("from", q.Get("from"), now); err != nil {
		return from, to, err
	}
	to = timeArg{now, true} // open: up to the newest window
	if q.Has("to") {
		if to, err = parseTimeArg("to", q.Get("to"), now); err != nil {
			return from, to, err
		}
	}
	if !to.t.After(from.t) {
		return from, to, fmt.Errorf("to (%s) must be after from (%s)", to.t.Format(time.RFC3339), from.t.Format(time.RFC3339))
	}
	return from, to, nil
}

// rangeAnswer answers GET /api/stats/{name}?from=…&to=…: the statistic over
// the windows of the smallest size whose grid from and to lie on (relative
// times are rounded down to it) and whose oldest window kept is not after
// from. Every size on whose grid a range lies gives the same answer.
func (s *Server) rangeAnswer(t Table, name string, q url.Values, now time.Time) answer {
	from, to, err := s.rangeArgs(name, q, now)
	if err != nil {
		return badRequest(err.Error())
	}
	for _, wk := range s.windowed[name] {
		f, fok := from.aligned(wk.w.Size)
		e, eok := to.aligned(wk.w.Size)
		if to.relative {
			e = e.Add(wk.w.Size) // the window now falls in, so far
		}
		if !fok || !eok {
			continue
		}
		ws, err := windowsOf(t, wk)
		if err != nil {
			return s.failed(err)
		}
		if oldest, ok := ws.Oldest(); ok && f.Before(oldest) {
			continue
		}
		agg, n := ws.Over(f, e)
		return answer{http.StatusOK, RangeResult{Statistic: name, From: f, To: e, WindowSeconds: int64(wk.w.Size / time.Second), Records: n, Result: agg.Result()}}
	}
	asked := "from=" + q.Get("from")
	if q.Has("to") {
		asked += " to=" + q.Get("to")
	}
	return s.windowsError(t, name, fmt.Sprintf("no window size of %s covers %s: an absolute time must start a window of one of its sizes, and from must not be older than that size's oldest window kept", name, asked))
}

// windowsAnswer answers GET /api/stats/{name}/windows?size=1h: every window
// of that size kept, with its result ("": the smallest size).
func (s *Server) windowsAnswer(t Table, name, size string) answer {
	wks := s.windowed[name]
	if len(wks) == 0 {
		return badRequest(fmt.Sprintf("statistic %q is not kept over windows (see /api/statistics)", name))
	}
	if size == "" {
		size = wks[0].w.Label()
	}
	for _, wk := range wks {
		if wk.w.Label() != size {
			continue
		}
		ws, err := windowsOf(t, wk)
		if err != nil {
			return s.failed(err)
		}
		return answer{http.StatusOK, ws.Result()}
	}
	return s.windowsError(t, name, fmt.Sprintf("size=%s: %s is kept over windows of %s", size, name, strings.Join(s.windowLabels(name), ", ")))
}

func (s *Server) windows(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	if _, ok := s.kind(name); !ok {
		s.unknown(w, name)
		return
	}
	t, ok := s.serving()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, notRecovered)
		return
	}
	setFreshness(w.Header(), s.fresh.status(time.Now()))
	s.windowsAnswer(t, name, r.URL.Query().Get("size")).write(w)
}
