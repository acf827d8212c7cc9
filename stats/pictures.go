package stats

import (
	"cmp"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/picstats/picstats/internal/wire"
)

// MaxTrackedPictures bounds the pictures that the per-picture statistics
// track. With more distinct ids, they track the MaxTrackedPictures ids of
// smallest idHash (a bottom-k sample, the same on every replica) and count
// the rest only in the totals.
const MaxTrackedPictures = 1000

func init() {
	Register(Kind{
		Name:        "pictures",
		Description: "Registrations and average weight (grams) per picture, for up to 1000 pictures.",
		Version:     1,
		New:         func() Stat { return newPictures() },
		Windows:     NoWindows, // per-picture state: too large to keep per window
	})
}

// Pictures tallies valid registrations per picture id.
//
// Memory is bounded by tracking at most MaxTrackedPictures ids: those with
// the smallest (idHash, id). This bottom-k rule keeps the tallies exact
// under any split and merge: an id that is tracked in the whole stream has
// at most k−1 ids below it in the whole stream, so also in every part, and
// so was tracked, with all of its registrations, in every part that saw it.
// With the 100 pictures of the feed every picture is tracked.
type Pictures struct {
	byID   map[string]*pictureTally
	N, Sum int64 // every valid registration, tracked or not; grams
	// The tracked tallies as a heap whose root is ordered last: the one a
	// new id below it evicts, found without a scan of byID (with more
	// distinct ids than tracked, a scan per eviction was three quarters of
	// a drain's CPU). nil until needed, and again after Merge.
	heap []*pictureTally
}

type pictureTally struct {
	id     string
	hash   uint64
	N, Sum int64
}

var _ Stat = (*Pictures)(nil)

func newPictures() *Pictures { return &Pictures{byID: map[string]*pictureTally{}} }

// before orders tallies by (hash, id): the order of the bottom-k sample.
func before(a, b *pictureTally) bool {
	return a.hash < b.hash || (a.hash == b.hash && a.id < b.id)
}

func (p *Pictures) Add(r *Record) {
	if !r.Valid() {
		return
	}
	id, w := r.Registration.PictureID, r.Registration.Weight
	p.N++
	p.Sum += w
	if t, ok := p.byID[id]; ok {
		t.N++
		t.Sum += w
		return
	}
	t := &pictureTally{id: id, hash: idHash(id), N: 1, Sum: w}
	if len(p.byID) < MaxTrackedPictures {
		p.byID[id] = t
		p.heap = nil
		return
	}
	if p.heap == nil {
		p.heap = slices.Collect(maps.Values(p.byID))
		for i := len(p.heap)/2 - 1; i >= 0; i-- {
			p.down(i)
		}
	}
	last := p.heap[0]
	if before(last, t) {
		return // not in the sample: counted in the totals only
	}
	delete(p.byID, last.id)
	p.byID[id] = t
	p.heap[0] = t
	p.down(0)
}

// down restores the heap order below i.
func (p *Pictures) down(i int) {
	h := p.heap
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && before(h[c], h[r]) {
			c = r
		}
		if !before(h[i], h[c]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (p *Pictures) Merge(other Stat) {
	o := other.(*Pictures)
	p.N += o.N
	p.Sum += o.Sum
	for id, ot := range o.byID {
		if t, ok := p.byID[id]; ok {
			t.N += ot.N
			t.Sum += ot.Sum
		} else {
			c := *ot
			p.byID[id] = &c
		}
	}
	p.heap = nil
	if len(p.byID) <= MaxTrackedPictures {
		return
	}
	tallies := slices.SortedFunc(maps.Values(p.byID), func(a, b *pictureTally) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, t := range tallies[MaxTrackedPictures:] {
		delete(p.byID, t.id)
	}
}

// PictureResult is one picture's registrations and average weight.
type PictureResult struct {
	Registrations int64   `json:"registrations"`
	Average       float64 `json:"average_weight_grams"`
}

func (p *Pictures) Result() any {
	res := struct {
		Pictures   map[string]PictureResult `json:"pictures"`
		Tracked    int                      `json:"tracked_pictures"`
		Untracked  int64                    `json:"untracked_registrations"`
		MaxTracked int                      `json:"max_tracked_pictures"`
	}{Pictures: make(map[string]PictureResult, len(p.byID)), Tracked: len(p.byID), Untracked: p.N, MaxTracked: MaxTrackedPictures}
	for id, t := range p.byID {
		res.Pictures[id] = PictureResult{t.N, float64(t.Sum) / float64(t.N)}
		res.Untracked -= t.N
	}
	return res
}

func (p *Pictures) MarshalBinary() ([]byte, error) {
	b := binary.AppendVarint(binary.AppendVarint(nil, p.N), p.Sum)
	for _, id := range slices.Sorted(maps.Keys(p.byID)) {
		t := p.byID[id]
		b = binary.AppendVarint(binary.AppendVarint(wire.AppendString(b, id), t.N), t.Sum)
	}
	return b, nil
}

func (p *Pictures) UnmarshalBinary(b []byte) error {
	*p = *newPictures()
	r := wire.NewReader(b)
	p.N = r.Varint("registrations")
	p.Sum = r.Varint("total weight")
	for r.More() {
		id := r.String("picture id")
		p.byID[id] = &pictureTally{id: id, hash: idHash(id), N: r.Varint("picture registrations"), Sum: r.Varint("picture weight")}
	}
	return r.Done()
}
