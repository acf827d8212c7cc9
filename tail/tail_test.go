package tail

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/picstats/picstats/cluster"
	"github.com/picstats/picstats/internal/testkafka"
)

func TestTailPrintsLikeTheSkeletonConsumer(t *testing.T) {
	cfg := testkafka.Start(t)
	cfg.Partitions = 1
	topic := string(cfg.Names.Pictures)
	if err := cluster.EnsureTopics(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	producer, err := cfg.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	values := []string{`{"picture_id":"000000419312","weight":156}`, `{"picture_id":"000000460347","weight":1635}`}
	for i, v := range values {
		r := &kgo.Record{Topic: topic, Value: []byte(v)}
		if i == 1 {
			r.Key = []byte("000000460347")
		}
		if err := producer.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	tc := Config{Topic: topic, FromBeginning: true, Count: 2}
	cl, err := cfg.Client(tc.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Run(ctx, cl, tc, &out); err != nil {
		t.Fatal(err)
	}
	want := "Received a message on topic " + topic + ": " + values[0] + " (key=null partition=0 offset=0)\n" +
		"Received a message on topic " + topic + ": " + values[1] + ` (key="000000460347" partition=0 offset=1)` + "\n"
	if out.String() != want {
		t.Fatalf("tail printed\n%s\nwant\n%s", out.String(), want)
	}
	if strings.Count(out.String(), "\n") != tc.Count {
		t.Fatal("tail did not stop after --count records")
	}
}
