package stats

func init() {
	Register(Kind{
		Name:        "min_weight",
		Description: "Lightest valid registration so far, in grams.",
		Version:     1,
		New:         func() Stat { return new(MinWeight) },
	})
}

// MinWeight is the smallest weight seen.
type MinWeight struct{ extreme }

var _ Stat = (*MinWeight)(nil)

func less(a, b int64) bool { return a < b }

func (m *MinWeight) Add(r *Record) {
	if r.Valid() {
		m.offer(r.Registration.Weight, less)
	}
}

func (m *MinWeight) Merge(other Stat) {
	if o := other.(*MinWeight); o.seen {
		m.offer(o.weight, less)
	}
}

func (m *MinWeight) Result() any {
	return struct {
		Min *int64 `json:"min_weight_grams"`
	}{m.result()}
}
