package stats

func init() {
	Register(Kind{
		Name:        "max_weight",
		Description: "Heaviest valid registration so far, in grams.",
		Version:     1,
		New:         func() Stat { return new(MaxWeight) },
	})
}

// MaxWeight is the largest weight seen.
type MaxWeight struct{ extreme }

var _ Stat = (*MaxWeight)(nil)

func greater(a, b int64) bool { return a > b }

func (m *MaxWeight) Add(r *Record) {
	if r.Valid() {
		m.offer(r.Registration.Weight, greater)
	}
}

func (m *MaxWeight) Merge(other Stat) {
	if o := other.(*MaxWeight); o.seen {
		m.offer(o.weight, greater)
	}
}

func (m *MaxWeight) Result() any {
	return struct {
		Max *int64 `json:"max_weight_grams"`
	}{m.result()}
}
