package processor

import (
	"log/slog"
	"testing"

	"github.com/lovoo/goka"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/stats"
	"github.com/picstats/picstats/table"
)

// shutdownContext stands in for the goka.Context of a processor that is
// shutting down: there, goka v1.1.14's Fail records the error and returns
// instead of panicking (partition_processor.go, syncFailer). Methods apply
// must not call panic through the nil embedded interface.
type shutdownContext struct {
	gokaContext
	key     string
	value   any
	fails   []error
	set     int
	emitted int
}

// gokaContext names the embedded interface: goka.Context has a method
// called Context, which a field of that name would shadow.
type gokaContext = goka.Context

func (c *shutdownContext) Key() string                                          { return c.key }
func (c *shutdownContext) Partition() int32                                     { return 0 }
func (c *shutdownContext) Value() any                                           { return c.value }
func (c *shutdownContext) Fail(err error)                                       { c.fails = append(c.fails, err) }
func (c *shutdownContext) SetValue(any, ...goka.ContextOption)                  { c.set++ }
func (c *shutdownContext) Emit(goka.Stream, string, any, ...goka.ContextOption) { c.emitted++ }

// TestApplyStopsAtFail checks that apply writes and emits nothing once it
// has called Fail, even when Fail returns, as goka's does during shutdown.
func TestApplyStopsAtFail(t *testing.T) {
	k, _ := stats.Lookup("count")
	p, err := New(cluster.DefaultNames(""), []stats.Kind{k}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func(s table.Snapshot) []byte { b, _ := s.MarshalBinary(); return b }
	good := snapshot(table.Snapshot{Partition: 0, Batch: 0, Prev: table.NoBatch, Last: 3, Agg: nil})
	// A table value whose partition 1 holds an aggregate of another
	// version: Apply of a snapshot of partition 0 succeeds, Stat fails.
	badClosed, _ := (&table.Value{Parts: []table.Part{{Partition: 1, ClosedThrough: 0, Closed: []byte{k.Version + 1, 1}}}}).MarshalBinary()

	for _, tc := range []struct {
		name     string
		snapshot []byte
		value    any
	}{
		{"malformed snapshot", []byte{0xff, 1, 2}, nil},
		{"empty snapshot", nil, nil},
		{"truncated table value", good, []byte{table.ValueVersion, 1, 0}},
		{"table value with trailing bytes", good, []byte{table.ValueVersion, 0, 0xff}},
		{"table value of another version", good, []byte{table.ValueVersion + 1}},
		{"failing Apply", snapshot(table.Snapshot{Batch: 0, Prev: table.NoBatch, Last: 9, Final: true, Agg: []byte{k.Version + 1, 7}}), nil},
		{"failing Stat", good, badClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := &shutdownContext{key: k.Name, value: tc.value}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("apply panicked after Fail returned: %v", r)
					}
				}()
				p.apply(ctx, tc.snapshot)
			}()
			if len(ctx.fails) != 1 {
				t.Errorf("apply called Fail %d times, want once: %v", len(ctx.fails), ctx.fails)
			}
			if ctx.set != 0 || ctx.emitted != 0 {
				t.Errorf("after Fail, apply called SetValue %d times and Emit %d times, want neither", ctx.set, ctx.emitted)
			}
		})
	}

	// The stand-in is faithful for the good path: a valid snapshot is
	// stored and published, and nothing fails.
	ctx := &shutdownContext{key: k.Name}
	p.apply(ctx, good)
	if len(ctx.fails) != 0 || ctx.set != 1 || ctx.emitted != 1 {
		t.Fatalf("a valid snapshot: %d fails, %d SetValue, %d Emit; want 0, 1, 1", len(ctx.fails), ctx.set, ctx.emitted)
	}
}
