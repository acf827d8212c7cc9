// Package processor is the goka processor that turns registrations on the
// picture topic into statistics: it decodes each record, folds it into one
// aggregate per enabled statistic, keeps the aggregates in the group table
// (keyed by statistic name, backed by a Kafka changelog), republishes each
// changed statistic on the stats topic and forwards rejected records, with
// their reason, to picture.rejected.
//
// Records on the picture topic may have any key (or none) and land on any
// partition, so contributions travel to the table through goka's loop topic,
// re-keyed by statistic name.
package processor

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/codec"
	"github.com/picstats/picstats/stats"
)

// Processor aggregates registrations into the enabled statistics.
type Processor struct {
	names  cluster.Names
	kinds  map[string]stats.Kind
	empty  map[string][]byte // encoding of each kind's empty aggregate
	logger *slog.Logger
}

// New returns a processor for the given statistics.
func New(names cluster.Names, kinds []stats.Kind, logger *slog.Logger) (*Processor, error) {
	if len(kinds) == 0 {
		return nil, fmt.Errorf("processor: no statistics enabled")
	}
	p := &Processor{names: names, kinds: map[string]stats.Kind{}, empty: map[string][]byte{}, logger: logger}
	for _, k := range kinds {
		empty, err := k.Encode(k.New())
		if err != nil {
			return nil, fmt.Errorf("processor: %w", err)
		}
		p.kinds[k.Name], p.empty[k.Name] = k, empty
	}
	return p, nil
}

// Graph is the goka group graph: Input(picture) → Loop keyed by statistic
// name → Persist (group table), with outputs stats and picture.rejected. All
// values are raw bytes: decoding happens in the callbacks, so a bad record
// is rejected and counted instead of stopping the processor.
func (p *Processor) Graph() *goka.GroupGraph {
	return goka.DefineGroup(p.names.Group,
		goka.Input(p.names.Pictures, new(gokacodec.Bytes), p.consume),
		goka.Loop(new(gokacodec.Bytes), p.merge),
		goka.Persist(new(gokacodec.Bytes)),
		goka.Output(p.names.Stats, new(gokacodec.Bytes)),
		goka.Output(p.names.Rejected, new(gokacodec.Bytes)),
	)
}

// NewGoka builds the runnable goka processor.
func (p *Processor) NewGoka(c cluster.Config, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	proc, err := goka.NewProcessor(c.Brokers, p.Graph(), append(c.ProcessorOptions(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	return proc, nil
}

func bytesOf(msg any) []byte {
	b, _ := msg.([]byte) // a null value arrives as nil
	return b
}

// consume handles one record of the picture topic: it sends one delta
// aggregate per statistic the record changes through the loop topic.
func (p *Processor) consume(ctx goka.Context, msg any) {
	rec := stats.Record{Time: ctx.Timestamp()}
	reg, err := codec.Decode(bytesOf(msg))
	if err != nil {
		rec.Rejected, _ = codec.ReasonOf(err)
		p.reject(ctx, bytesOf(msg), rec.Rejected, err)
	} else {
		rec.Registration = reg
	}
	for name, k := range p.kinds {
		delta := k.New()
		delta.Add(rec)
		b, err := k.Encode(delta)
		if err != nil {
			ctx.Fail(err)
		}
		if string(b) == string(p.empty[name]) { // the record does not change this statistic
			continue
		}
		ctx.Loopback(name, b)
	}
}

// Rejection is the value forwarded to picture.rejected. Its key is
// "<topic>/<partition>/<offset>" of the original record, so a reader can
// drop repeats.
type Rejection struct {
	Reason    codec.Reason `json:"reason"`
	Error     string       `json:"error"`
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Key       string       `json:"key,omitempty"`
	Value     string       `json:"value"`                  // the original value, if it is UTF-8
	ValueB64  []byte       `json:"value_base64,omitempty"` // else the original bytes
}

// RejectionKey is the key of a rejected record on picture.rejected.
func RejectionKey(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

func (p *Processor) reject(ctx goka.Context, value []byte, reason codec.Reason, err error) {
	r := Rejection{Reason: reason, Error: err.Error(), Topic: string(ctx.Topic()),
		Partition: ctx.Partition(), Offset: ctx.Offset(), Key: ctx.Key()}
	if utf8.Valid(value) {
		r.Value = string(value)
	} else {
		r.ValueB64 = value
	}
	b, _ := json.Marshal(r) // strings, ints and bytes always encode
	ctx.Emit(p.names.Rejected, RejectionKey(r.Topic, r.Partition, r.Offset), b)
}

// merge folds a delta from the loop topic into the statistic's table value
// and republishes the statistic.
func (p *Processor) merge(ctx goka.Context, msg any) {
	name := ctx.Key()
	k, ok := p.kinds[name]
	if !ok {
		// Sent by an instance with other statistics enabled; this one keeps
		// no table value for it.
		p.logger.Warn("dropping a delta of a statistic that is not enabled here", "stat", name)
		return
	}
	cur, err := TableValue(k, ctx.Value())
	if err != nil {
		ctx.Fail(err) // state written by another version: stop loudly rather than misread it
	}
	delta, err := k.Decode(bytesOf(msg))
	if err != nil {
		ctx.Fail(fmt.Errorf("loop message for %s: %w", name, err))
	}
	cur.Merge(delta)
	b, err := k.Encode(cur)
	if err != nil {
		ctx.Fail(err)
	}
	ctx.SetValue(b)
	res, err := json.Marshal(cur.Result())
	if err != nil {
		ctx.Fail(fmt.Errorf("result of %s: %w", name, err))
	}
	ctx.Emit(p.names.Stats, name, res)
}

// TableValue decodes a value of the group table (as a processor or a view
// returns it; nil when the statistic has no value yet) into the aggregate of
// statistic k.
func TableValue(k stats.Kind, value any) (stats.Stat, error) {
	s, err := k.Decode(bytesOf(value))
	if err != nil {
		return nil, fmt.Errorf("table value of %s: %w", k.Name, err)
	}
	return s, nil
}
