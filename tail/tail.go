// Package tail prints the records of a topic, one line each, like the
// original assignment's skeleton consumer.
package tail

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config says what to print.
type Config struct {
	Topic         string
	FromBeginning bool
	Count         int // stop after this many records; 0: until cancelled
}

// ClientOpts are the options of the client Run reads with: every partition
// of the topic, without a consumer group, so tail never disturbs the
// pipeline.
func (c Config) ClientOpts() []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if c.FromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	return []kgo.Opt{kgo.ConsumeTopics(c.Topic), kgo.ConsumeResetOffset(start)}
}

// Run prints records to w until ctx is cancelled or Count records were
// printed. cl must have been made with cfg.ClientOpts.
func Run(ctx context.Context, cl *kgo.Client, cfg Config, w io.Writer) error {
	printed := 0
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var errs []error
		fetches.EachError(func(topic string, p int32, err error) {
			errs = append(errs, fmt.Errorf("read %s partition %d: %w", topic, p, err))
		})
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			fmt.Fprintf(w, "Received a message on topic %s: %s (key=%s partition=%d offset=%d)\n",
				r.Topic, r.Value, keyText(r.Key), r.Partition, r.Offset)
			if printed++; cfg.Count > 0 && printed >= cfg.Count {
				return nil
			}
		}
	}
}

func keyText(k []byte) string {
	if k == nil {
		return "null"
	}
	return fmt.Sprintf("%q", k)
}
