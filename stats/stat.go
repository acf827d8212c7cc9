// Package stats defines what a statistic is and holds every statistic
// picstats knows, one file each.
//
// A statistic is a mergeable aggregate (see Stat). Each file registers its
// Kind in an init function; the processor, the API and the stats topic take
// the list of statistics from the registry and never name one. Adding a
// statistic is adding one file here (and its test): the generic law test in
// laws_test.go then checks it like every other.
//
// Any statistic can also be kept over tumbling event-time windows
// (windows.go: Kind.Windowed), by no code of its own: the windowed form is a
// Stat too, and the law test covers it. A statistic whose state is large
// declares fewer window sizes, or none (Kind.Windows). The engine feeds a
// batch's records to a Set (set.go), in which a statistic and its windowed
// forms share one Add per record.
package stats

import (
	"encoding"
	"time"

	"github.com/picstats/picstats/codec"
)

// Record is one record of the picture topic as a statistic sees it: either a
// valid Registration, or a rejected record with the Reason.
type Record struct {
	Registration codec.Registration // the zero value when Rejected is set
	Rejected     codec.Reason       // why the record was rejected; empty if valid
	Time         time.Time          // the record's timestamp (event time)
}

// Valid reports whether the record is a valid registration.
func (r Record) Valid() bool { return r.Rejected == "" }

// Stat is the aggregate of one statistic over some set of records.
//
// The contract, checked for every registered statistic by the law test:
//   - Add folds one record (valid or rejected) into the aggregate. It must
//     not keep r, which the engine reuses for the next record.
//   - Merge folds in another aggregate of the same concrete type, so that
//     merging the aggregates of the parts of any split of a stream equals
//     adding the whole stream in one pass. The engine pre-aggregates batches
//     and merges them in any grouping, so Merge must be associative,
//     commutative, and have the empty aggregate (Kind.New) as identity.
//     Merge must not keep a reference to other.
//   - MarshalBinary is deterministic (equal aggregates give equal bytes) and
//     UnmarshalBinary restores exactly what was marshalled. Kind.Encode adds
//     the version byte; these methods see only the payload.
//   - Result is the JSON-encodable value served by the API and published on
//     the stats topic. Field names carry their units (e.g.
//     average_weight_grams); an undefined value (the mean of nothing) is null.
type Stat interface {
	Add(*Record)
	Merge(other Stat)
	Result() any
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}
