package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	gokacodec "github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/picstats/picstats/bench/internal/benchkit"
	"github.com/picstats/picstats/codec"
)

// The goka-naive contender: the design picstats does not use. A goka
// processor reads the input and, for every valid record, sends one
// loopback message per statistic, keyed by the statistic's name; the
// loopback handler folds the weight into the statistic's value in the group
// table. That is two Kafka writes (loopback, changelog) and a read per
// record and statistic and, being at-least-once, it counts records again
// after a crash. Its output is the group table's changelog itself; its
// values carry the fields of picstats' results.

var naiveStats = []string{"count", "average_weight", "min_weight", "max_weight"}

func (e *env) runNaive(ctx context.Context, b *backlog) result {
	group := b.prefix + "naive"
	if err := deletePrefixed(ctx, e.adm, group, group); err != nil {
		return result{note: "reset: " + err.Error()}
	}
	c, err := benchkit.Start(ctx, e.log("goka-naive"), nil, e.self, "--mode", "goka-naive", "--brokers", e.broker, "--topic", b.topic, "--group", group)
	if err != nil {
		return result{note: err.Error()}
	}
	r := e.awaitContender(ctx, c, nil, "goka-naive", string(goka.GroupTable(goka.Group(group))), b)
	_ = deletePrefixed(ctx, e.adm, group, group)
	return r
}

// naiveValue is a statistic's value in the naive table.
type naiveValue struct {
	Registrations int64 `json:"registrations,omitempty"`
	Total         int64 `json:"total_weight_grams,omitempty"`
	Min           int64 `json:"min_weight_grams,omitempty"`
	Max           int64 `json:"max_weight_grams,omitempty"`
}

func naiveChild(broker, topic, group string) error {
	if broker == "" || topic == "" || group == "" {
		return errors.New("want --brokers, --topic and --group")
	}
	g := goka.DefineGroup(goka.Group(group),
		goka.Input(goka.Stream(topic), new(gokacodec.Bytes), naiveInput),
		goka.Loop(new(gokacodec.Bytes), naiveLoop),
		goka.Persist(new(gokacodec.Bytes)),
	)
	// goka's defaults, as a first-time goka user would have them, but for
	// what this broker needs: a protocol version, reading from the oldest
	// offset (goka starts new groups at the newest), replication 1, and the
	// table in memory as picstats keeps it.
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V2_3_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	goka.ReplaceGlobalConfig(cfg)
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication, tm.Stream.Replication = 1, 1
	p, err := goka.NewProcessor([]string{broker}, g,
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithTopicManagerConfig(tm)),
		goka.WithStorageBuilder(storage.MemoryBuilder()),
	)
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
	reg, err := codec.Decode(b)
	if err != nil {
		return
	}
	w := strconv.AppendInt(nil, reg.Weight, 10)
	for _, s := range naiveStats {
		ctx.Loopback(s, w)
	}
}

// naiveLoop folds a weight into the statistic's value in the table.
func naiveLoop(ctx goka.Context, msg any) {
	w, err := strconv.ParseInt(string(msg.([]byte)), 10, 64)
	if err != nil {
		ctx.Fail(err)
	}
	var v naiveValue
	if old, _ := ctx.Value().([]byte); old != nil {
		if err := json.Unmarshal(old, &v); err != nil {
			ctx.Fail(err)
		}
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
