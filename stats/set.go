package stats

// Set is one aggregate per kind of a list, all fed the same records: the
// engine's aggregate of a batch.
//
// Adding a record to a Set equals adding it to each aggregate — the Stat
// laws make it so, and set_test.go checks it for every registered
// statistic — but costs one Add per statistic rather than one per kind. A
// statistic and its windowed forms share a run: one aggregate of the
// statistic over consecutive records of one window of every size (a
// minute, when the sizes are a minute, an hour and a day). A run is merged
// into the statistic and into the right window of each windowed form when
// it ends, or when the aggregates are read. Records come nearly in time
// order, so a run holds thousands of records; a few runs stay open at once,
// so that records that jump between windows do not end a run each.
type Set struct {
	stats  []Stat
	direct []Stat // kinds that share no run: added to at once
	groups []*runGroup
}

// runGroup is a statistic and its windowed forms in a Set.
type runGroup struct {
	base  Kind
	size  int64      // ms; the run's window, which divides every size of wins
	plain Stat       // the statistic over all time; nil if not in the set
	wins  []*Windows // its windowed forms
	runs  []run      // open, oldest first; at most maxRuns
	last  int        // the run the last record went to
}

// run is the aggregate of records of one run window.
type run struct {
	start, latest, n int64 // ms: the run window's start, the newest record time; records
	agg              Stat
}

const maxRuns = 4

// NewSet returns empty aggregates of kinds.
func NewSet(kinds []Kind) *Set {
	s := &Set{stats: make([]Stat, len(kinds))}
	byBase := map[string]*runGroup{}
	for i, k := range kinds {
		s.stats[i] = k.New()
		if w, ok := s.stats[i].(*Windows); ok {
			g := byBase[w.inner.Name]
			if g == nil {
				g = &runGroup{base: w.inner}
				byBase[w.inner.Name] = g
				s.groups = append(s.groups, g)
			}
			g.wins = append(g.wins, w)
			g.size = gcd(g.size, w.size)
		}
	}
	for i, k := range kinds {
		if _, ok := s.stats[i].(*Windows); ok {
			continue
		}
		if g := byBase[k.Name]; g != nil && g.plain == nil {
			g.plain = s.stats[i]
		} else {
			s.direct = append(s.direct, s.stats[i])
		}
	}
	return s
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Add folds r into every aggregate. Like Stat.Add, it does not keep r.
func (s *Set) Add(r *Record) {
	for _, a := range s.direct {
		a.Add(r)
	}
	if len(s.groups) == 0 {
		return
	}
	t := r.Time.UnixMilli()
	for _, g := range s.groups {
		g.add(t, r)
	}
}

func (g *runGroup) add(t int64, r *Record) {
	i := g.last
	if i >= len(g.runs) || t < g.runs[i].start || t-g.runs[i].start >= g.size {
		i = g.open(floor(t, g.size))
	}
	x := &g.runs[i]
	x.latest = max(x.latest, t)
	x.n++
	x.agg.Add(r)
	g.last = i
}

// open returns the index of the open run that starts at start, opening it
// (and ending the oldest if maxRuns are open) if there is none.
func (g *runGroup) open(start int64) int {
	for i := range g.runs {
		if g.runs[i].start == start {
			return i
		}
	}
	if len(g.runs) == maxRuns {
		g.end(0)
	}
	g.runs = append(g.runs, run{start: start, latest: start, agg: g.base.New()})
	return len(g.runs) - 1
}

// end merges the i'th open run into the group's aggregates and closes it.
func (g *runGroup) end(i int) {
	x := g.runs[i]
	if g.plain != nil {
		g.plain.Merge(x.agg)
	}
	for _, w := range g.wins {
		w.addRun(x.start, x.latest, x.n, x.agg)
	}
	g.runs = append(g.runs[:i], g.runs[i+1:]...)
	g.last = len(g.runs)
}

// Stats returns the aggregates, in the kinds' order, with every record
// added so far. They stay the Set's: read them, do not change them, and
// not after the next Add.
func (s *Set) Stats() []Stat {
	for _, g := range s.groups {
		for len(g.runs) > 0 {
			g.end(len(g.runs) - 1)
		}
	}
	return s.stats
}

// floor is the start of t's window of size ms, also before 1970.
func floor(t, size int64) int64 {
	s := t / size * size
	if s > t {
		s -= size
	}
	return s
}
