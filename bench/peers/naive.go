package main

import (
	"context"
	"encoding/json"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/picstats/picstats/codec"
)

// The goka-naive contender is the design picstats does not use: a goka
// processor that, for every valid record, sends one loopback message per
// statistic, keyed by the statistic's name, and folds the weight into that
// statistic's value in the group table. That is two Kafka writes
// (loopback, changelog) and a read per record and statistic and, being
// at-least-once, it counts records again after a crash. Its output is the
// table's changelog, whose values carry the fields of picstats' results.

// naiveValue is a statistic's value in the naive table.
type naiveValue struct {
	Registrations int64 `json:"registrations,omitempty"`
	Total         int64 `json:"total_weight_grams,omitempty"`
	Min           int64 `json:"min_weight_grams,omitempty"`
	Max           int64 `json:"max_weight_grams,omitempty"`
}

func naiveChild(broker, topic, group string) error {
	g := goka.DefineGroup(goka.Group(group),
		goka.Input(goka.Stream(topic), new(gokacodec.Bytes), naiveInput),
		goka.Loop(new(gokacodec.Bytes), naiveLoop),
		goka.Persist(new(gokacodec.Bytes)))
	// goka's defaults, as a first-time goka user would have them, but for
	// what this broker needs: a protocol version, reading from the oldest
	// offset (goka starts new groups at the newest), replication 1, and the
	// table in memory as picstats keeps it.
	cfg := goka.DefaultConfig()
	cfg.Version, cfg.Consumer.Offsets.Initial = sarama.V2_3_0_0, sarama.OffsetOldest
	goka.ReplaceGlobalConfig(cfg)
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication, tm.Stream.Replication = 1, 1
	p, err := goka.NewProcessor([]string{broker}, g,
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithTopicManagerConfig(tm)),
		goka.WithStorageBuilder(storage.MemoryBuilder()))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	return p.Run(ctx)
}

// naiveInput sends one loopback message per valid record and statistic.
func naiveInput(ctx goka.Context, msg any) {
	b, _ := msg.([]byte)
	if reg, err := codec.Decode(b); err == nil {
		w := strconv.AppendInt(nil, reg.Weight, 10)
		for _, s := range []string{"count", "average_weight", "min_weight", "max_weight"} {
			ctx.Loopback(s, w)
		}
	}
}

// naiveLoop folds a weight into the statistic's value in the table.
func naiveLoop(ctx goka.Context, msg any) {
	w, err := strconv.ParseInt(string(msg.([]byte)), 10, 64)
	var v naiveValue
	if old, _ := ctx.Value().([]byte); err == nil && old != nil {
		err = json.Unmarshal(old, &v)
	}
	if err != nil {
		ctx.Fail(err)
	}
	switch ctx.Key() {
	case "count":
		v.Registrations++
	case "average_weight":
		v.Registrations++
		v.Total += w
	case "min_weight":
		if v.Min == 0 || w < v.Min {
			v.Min = w
		}
	case "max_weight":
		v.Max = max(v.Max, w)
	}
	out, err := json.Marshal(v)
	if err != nil {
		ctx.Fail(err)
	}
	ctx.SetValue(out)
}
