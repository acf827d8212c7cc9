package stats

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultWindowsSpec is DefaultWindows as ParseWindows reads them.
const DefaultWindowsSpec = "1m=2h,1h=48h,1d=35d"

// ParseWindows reads window sizes with their retentions, such as
// DefaultWindowsSpec ("size=retention,…"; durations as Go writes them, or
// whole days such as 35d), or "none".
func ParseWindows(spec string) ([]Window, error) {
	spec = strings.TrimSpace(spec)
	if spec == "none" {
		return []Window{}, nil
	}
	var ws []Window
	for item := range strings.SplitSeq(spec, ",") {
		size, retention, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("%q: want size=retention, e.g. 1h=48h (or none)", item)
		}
		var w Window
		var err error
		if w.Size, err = parseDays(size); err != nil {
			return nil, fmt.Errorf("window size %q: %w", size, err)
		}
		if w.Retention, err = parseDays(retention); err != nil {
			return nil, fmt.Errorf("retention %q: %w", retention, err)
		}
		if err := w.validate(); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(ws, func(x Window) bool { return x.Size == w.Size }) {
			return nil, fmt.Errorf("window size %s given twice", w.Label())
		}
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b Window) int { return cmpInt(int64(a.Size), int64(b.Size)) })
	return ws, nil
}

// parseDays is time.ParseDuration that also reads whole days ("35d").
func parseDays(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("want a whole number of days, e.g. 35d")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// WindowedKinds returns the windowed forms of ks for the sizes in ws (with
// ws's retentions) that each statistic is kept over (Kind.WindowSizes),
// statistic by statistic, smallest size first.
func WindowedKinds(ks []Kind, ws []Window) []Kind {
	var out []Kind
	for _, k := range ks {
		declared := k.WindowSizes()
		for _, w := range ws {
			if !slices.ContainsFunc(declared, func(d Window) bool { return d.Size == w.Size }) {
				continue
			}
			wk, err := k.Windowed(w)
			if err != nil {
				panic(err) // ParseWindows validated w
			}
			out = append(out, wk)
		}
	}
	return out
}
