package stats

import (
	"encoding/binary"

	"github.com/picstats/picstats/internal/wire"
)

// extreme is the state shared by MinWeight and MaxWeight: the best weight
// seen so far, if any, under a comparison.
type extreme struct {
	seen   bool
	weight int64
}

func (e *extreme) offer(w int64, better func(a, b int64) bool) {
	if !e.seen || better(w, e.weight) {
		e.seen, e.weight = true, w
	}
}

func (e *extreme) result() *int64 {
	if !e.seen {
		return nil
	}
	w := e.weight
	return &w
}

func (e *extreme) MarshalBinary() ([]byte, error) {
	if !e.seen {
		return nil, nil
	}
	return binary.AppendVarint(nil, e.weight), nil
}

func (e *extreme) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		*e = extreme{}
		return nil
	}
	r := wire.NewReader(b)
	e.seen, e.weight = true, r.Varint("weight")
	return r.Done()
}
