package api

import (
	"sync"
	"sync/atomic"
	"time"
)

// freshness knows how current the View's copy of the table is, judged
// against the table's end offsets on the broker rather than by goka's own
// state: goka keeps a View partition Running through its retry backoff after
// a failed load and turns it Running again after a reconnect before it has
// caught up, so View.Recovered is no measure of currency.
//
// The View's Update callback records, per table partition, the next offset
// it will apply (applied). A sampler asks the broker for the table's end
// offsets about once a second (sampled). The values served are known to be
// current as of the newest sample whose end offsets the View has reached in
// every partition; the age of that sample is the data's age. While the View
// does not consume (broker gone, partition stalled) no newer sample is
// reached — or none is taken — and the age grows. Sample times are those at
// which the request was sent, so the age errs on the old side.
type freshness struct {
	// parts holds one entry per table partition seen so far; it only grows,
	// and Update reads it without a lock.
	parts atomic.Pointer[[]*partFreshness]
	grow  sync.Mutex

	mu      sync.Mutex
	samples []endOffsets // oldest first; at most maxSamples
}

// partFreshness is what the View's goroutine for one table partition
// reports.
type partFreshness struct {
	next atomic.Int64 // the next offset the View will apply
	// busySince is when the Update callback running for this partition
	// started (unix nanoseconds), 0 while none runs: the watchdog's input.
	busySince atomic.Int64
}

// endOffsets is one sample of the table's end offsets.
type endOffsets struct {
	at   time.Time
	ends []int64 // by partition
}

// maxSamples bounds the samples kept: a View more than this many samples
// behind is simply as old as the oldest.
const maxSamples = 64

// part returns the entry of table partition p, creating it if needed.
func (f *freshness) part(p int32) *partFreshness {
	if ps := f.parts.Load(); ps != nil && int(p) < len(*ps) {
		return (*ps)[p]
	}
	f.grow.Lock()
	defer f.grow.Unlock()
	var ps []*partFreshness
	if old := f.parts.Load(); old != nil {
		ps = *old
	}
	if int(p) < len(ps) {
		return ps[p]
	}
	ps = append([]*partFreshness(nil), ps...)
	for len(ps) <= int(p) {
		ps = append(ps, new(partFreshness))
	}
	f.parts.Store(&ps)
	return ps[p]
}

// applied records that the View has applied the record at offset of table
// partition p.
func (f *freshness) applied(p int32, offset int64) {
	f.part(p).next.Store(offset + 1)
}

// sampled records the table's end offsets as the broker gave them for a
// request sent at at.
func (f *freshness) sampled(at time.Time, ends []int64) {
	for p := range ends {
		f.part(int32(p)) // so that position and lag count every partition
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.samples); n > 0 && !at.After(f.samples[n-1].at) {
		return // answers may arrive out of order; keep times increasing
	}
	if len(f.samples) == maxSamples {
		f.samples = append(f.samples[:0], f.samples[1:]...)
	}
	f.samples = append(f.samples, endOffsets{at, ends})
}

// status is how current the View is at one moment.
type status struct {
	position int64         // sum over partitions of the next offset to apply
	lag      int64         // records of the newest sample not yet applied
	known    bool          // some sample has been reached: age means something
	age      time.Duration // since the newest sample the View has reached
}

func (f *freshness) status(now time.Time) status {
	var next []int64
	var st status
	if ps := f.parts.Load(); ps != nil {
		next = make([]int64, len(*ps))
		for p, pf := range *ps {
			next[p] = pf.next.Load()
			st.position += next[p]
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.samples) == 0 {
		return st
	}
	for p, end := range f.samples[len(f.samples)-1].ends {
		if p < len(next) && end > next[p] {
			st.lag += end - next[p]
		}
	}
	for i := len(f.samples) - 1; i >= 0; i-- {
		if reached(next, f.samples[i].ends) {
			st.known, st.age = true, max(0, now.Sub(f.samples[i].at))
			return st
		}
	}
	return st
}

// partitionLags returns, per table partition of the newest sample, the
// records the View had not applied then; nil before the first sample.
func (f *freshness) partitionLags() []int64 {
	var next []int64
	if ps := f.parts.Load(); ps != nil {
		next = make([]int64, len(*ps))
		for p, pf := range *ps {
			next[p] = pf.next.Load()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.samples) == 0 {
		return nil
	}
	ends := f.samples[len(f.samples)-1].ends
	lags := make([]int64, len(ends))
	for p, end := range ends {
		if p < len(next) && end > next[p] {
			lags[p] = end - next[p]
		} else if p >= len(next) {
			lags[p] = end
		}
	}
	return lags
}

// reached reports whether the positions next have reached the end offsets.
func reached(next, ends []int64) bool {
	for p, end := range ends {
		if end > 0 && (p >= len(next) || next[p] < end) {
			return false
		}
	}
	return true
}

// busy marks the start of an Update callback for partition p; the returned
// function marks its end.
func (f *freshness) busy(p int32) (done func()) {
	pf := f.part(p)
	pf.busySince.Store(time.Now().UnixNano())
	return func() { pf.busySince.Store(0) }
}

// oldestBusy returns how long the longest-running Update callback has run,
// 0 if none runs.
func (f *freshness) oldestBusy(now time.Time) time.Duration {
	var oldest time.Duration
	if ps := f.parts.Load(); ps != nil {
		for _, pf := range *ps {
			if since := pf.busySince.Load(); since != 0 {
				oldest = max(oldest, now.Sub(time.Unix(0, since)))
			}
		}
	}
	return oldest
}
